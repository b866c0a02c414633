import Benchmark
import ChunkStore
import Digests
import Foundation

// The store's hot paths on real Go build outputs: the chunker alone, zstd, and a whole put and
// get. The corpus is the output files of a `go build std` that scripts/bench-micro gathers into
// $CHUNKCACHE_CORPUS (not committed).

private let corpus: [[UInt8]] = {
    guard let directory = ProcessInfo.processInfo.environment["CHUNKCACHE_CORPUS"] else {
        fatalError("set CHUNKCACHE_CORPUS to a directory of Go build outputs (scripts/bench-micro does)")
    }
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return files.sorted().compactMap { FileManager.default.contents(atPath: directory + "/" + $0).map { [UInt8]($0) } }
}()

private let corpusBytes = corpus.reduce(0) { $0 + $1.count }

let benchmarks: @Sendable () -> Void = {
    // Throughput is reported per iteration; one iteration processes the whole corpus, so
    // MB/s = corpus MB × iterations/s. The corpus size is printed once.
    print("corpus: \(corpus.count) files, \(corpusBytes) bytes")
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput, .instructions], maxDuration: .seconds(5), maxIterations: 20)

    Benchmark("FastCDC chunking (corpus)") { benchmark in
        let chunker = FastCDC(averageSize: 16 << 10)
        for _ in benchmark.scaledIterations {
            var count = 0
            for file in corpus { file.withUnsafeBytes { count += chunker.chunks(of: $0).count } }
            blackHole(count)
        }
    }

    Benchmark("SHA-256 (corpus)") { benchmark in
        for _ in benchmark.scaledIterations {
            for file in corpus { blackHole(SHA256.hash(file)) }
        }
    }

    Benchmark("zstd-3 compress, 16 KiB chunks (corpus)") { benchmark in
        let compressor = Compressor(codec: .zstd, level: 3)
        let chunker = FastCDC(averageSize: 16 << 10)
        var out: [UInt8] = []
        for _ in benchmark.scaledIterations {
            for file in corpus {
                file.withUnsafeBytes { raw in
                    for range in chunker.chunks(of: raw) {
                        out.removeAll(keepingCapacity: true)
                        blackHole(compressor.compress(UnsafeRawBufferPointer(rebasing: raw[range]), into: &out))
                    }
                }
            }
        }
    }

    let root = NSTemporaryDirectory() + "store-bench-\(getpid())"
    // The go command sends each output's ID; computing them is not part of the put path.
    let keys = corpus.indices.map { SHA256.hash(Array("\($0)".utf8)) }
    let outputIDs = corpus.map { SHA256.hash($0) }
    Benchmark("put path: chunk + hash + compress + write (corpus)", configuration: .init(maxIterations: 5)) { benchmark in
        for iteration in benchmark.scaledIterations {
            try? FileManager.default.removeItem(atPath: root)
            let store = try ChunkStore(directory: root + "/\(iteration)")
            benchmark.startMeasurement()
            for (n, file) in corpus.enumerated() {
                try store.store(key: keys[n], outputID: outputIDs[n], time: 0, body: .bytes(file))
            }
            benchmark.stopMeasurement()
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    // The get path as the handler runs it: each output reassembled into a new file of a
    // process's live area, in memory (tmpfs, the default) or on the store's disk; from chunks as
    // puts store them (zstd-1) and as a build leaves them (recompressed at the default level,
    // zstd-15 with the store's dictionary). Files are removed between iterations, outside the
    // measurement.
    for (inMemory, recompressed) in [(true, false), (true, true), (false, true)] {
        let memoryRoot = inMemory ? LiveFiles.privateMemoryRoot() : nil
        if inMemory && memoryRoot == nil { continue }
        let name = "get path: read + decompress + verify + write file, live files \(inMemory ? "in memory" : "on disk"), chunks \(recompressed ? "recompressed" : "as put") (corpus)"
        Benchmark(name, configuration: .init(maxDuration: .seconds(40), maxIterations: 10)) { benchmark in
            try? FileManager.default.removeItem(atPath: root)
            let store = try ChunkStore(directory: root + "/get")
            var manifests: [Manifest] = []
            for (n, file) in corpus.enumerated() {
                manifests.append(try store.store(key: keys[n], outputID: outputIDs[n], time: 0, body: .bytes(file)))
            }
            if recompressed { try store.recompressPendingChunks(level: 15) }
            sync()  // the fresh packs' writeback must not land inside a measurement
            for _ in benchmark.scaledIterations {
                let live = try LiveFiles(diskRoot: store.liveRoot, memoryRoot: memoryRoot, memoryBudget: inMemory ? 1 << 40 : 0)
                benchmark.startMeasurement()
                for manifest in manifests {
                    _ = try live.create(manifest.outputID, size: manifest.size) { try store.materialize(manifest, at: $0) }
                }
                benchmark.stopMeasurement()
                live.removeAll()
            }
            try? FileManager.default.removeItem(atPath: root)
        }
    }
}
