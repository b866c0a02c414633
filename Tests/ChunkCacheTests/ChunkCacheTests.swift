@testable import CacheProg
import ChunkCache
import ChunkStore
import Digests
import FileIO
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The directory holding the test bundle, where SwiftPM also puts the package's executables.
var productsDirectory: String {
    FileSystem.parentDirectory(of: FileSystem.absolutePath(CommandLine.arguments[0]))
}

func actionID(_ n: Int) -> ActionID {
    ActionID(bytes: SHA256.hash(Array("action \(n)".utf8)).bytes)!
}

/// 200 KB of pseudo-random bytes (FNV steps), the same for every output.
let shared: [UInt8] = {
    var state: UInt64 = 0xcbf2_9ce4_8422_2325
    return (0..<200_000).map { _ in
        state = (state ^ 0x5A) &* 0x100_0000_01B3
        return UInt8(truncatingIfNeeded: state >> 29)
    }
}()

func body(_ n: Int) -> [UInt8] {
    // Outputs that share a long common part, like builds of related packages.
    return Array("output \(n) ".utf8) + shared + Array(repeating: UInt8(n & 0xFF), count: n % 5000)
}

@Suite("chunkcache as a GOCACHEPROG")
struct ChunkCacheTests {
    let temp: String

    init() throws {
        temp = "/tmp/chunkcache-test-" + FileSystem.uniqueSuffix()
        try FileSystem.createDirectories(temp)
    }

    var chunkcache: String { productsDirectory + "/chunkcache" }

    @Test("puts then gets through the real binary: hits with the right bytes, DiskPaths without extension")
    func putGet() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let (paths, status) = try await CacheProgClient.withProgram([chunkcache, "--dir", temp + "/store"]) { client in
            var paths: [String] = []
            for n in 0..<20 { _ = try await client.put(actionID(n), body: body(n)) }
            for n in 0..<20 {
                let found = try await client.get(actionID(n))
                let entry = try #require(found)
                #expect(try FileSystem.readFile(entry.diskPath) == body(n))
                #expect(entry.outputID == OutputID(of: body(n)))
                #expect(entry.time != nil)
                paths.append(entry.diskPath)
            }
            #expect(try await client.get(actionID(99)) == nil)
            try await client.close()
            return paths
        }
        #expect(status == 0)
        #expect(paths.allSatisfy { !($0.split(separator: "/").last ?? "").contains(".") })
        // After close, the run's live files are gone; the store keeps the outputs.
        #expect(paths.allSatisfy { !FileSystem.exists($0) })
        let stats = CacheStatistics(of: try ChunkStore(directory: temp + "/store"))
        #expect(stats.store.outputs == 20)
        #expect(stats.hits == 20 && stats.misses == 1 && stats.store.puts == 20)
        #expect(stats.store.dedupRatio > 3)
    }

    @Test("without close (as go list ends), live files stay readable after the process exits")
    func livesPastEndOfInput() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let (path, _) = try await CacheProgClient.withProgram([chunkcache, "--dir", temp + "/store"]) { client in
            try await client.put(actionID(1), body: body(1)).diskPath
        }
        #expect(try FileSystem.readFile(path) == body(1))
    }

    @Test("a corrupted pack is a miss, and the output is stored again by the next put")
    func corruptionIsMiss() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let store = temp + "/store"
        _ = try await CacheProgClient.withProgram([chunkcache, "--dir", store]) { client in
            _ = try await client.put(actionID(1), body: body(1))
            try await client.close()
        }
        try damagePacks(of: store)
        let (again, _) = try await CacheProgClient.withProgram([chunkcache, "--dir", store]) { client in
            let miss = try await client.get(actionID(1))
            #expect(miss == nil)
            _ = try await client.put(actionID(1), body: body(1))
            let hit = try await client.get(actionID(1))
            let bytes = try hit.map { try FileSystem.readFile($0.diskPath) }
            try await client.close()
            return bytes
        }
        #expect(again == body(1))
        #expect(try ChunkStore(directory: store).statistics().damaged == 1)
    }

    @Test("two processes writing the same outputs at once both succeed, and the store serves them all")
    func twoWriters() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let store = temp + "/store"
        let binary = chunkcache
        try await withThrowingTaskGroup(of: Int32.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    try await CacheProgClient.withProgram([binary, "--dir", store]) { client in
                        try await withThrowingTaskGroup(of: Void.self) { puts in
                            for n in 0..<100 { puts.addTask { _ = try await client.put(actionID(n), body: body(n)) } }
                            try await puts.waitForAll()
                        }
                        try await client.close()
                    }.exitStatus
                }
            }
            for try await status in group { #expect(status == 0) }
        }
        let (bad, _) = try await CacheProgClient.withProgram([binary, "--dir", store]) { client in
            var bad = 0
            for n in 0..<100 {
                let entry = try await client.get(actionID(n))
                if try entry.map({ try FileSystem.readFile($0.diskPath) }) != body(n) { bad += 1 }
            }
            try await client.close()  // a run that just ended its input would keep its 20 MB of live files for a while
            return bad
        }
        #expect(bad == 0)
    }

    @Test("a store it must refuse (writable by others) is ignored: the build is served uncached, never failed")
    func refusedStoreServesUncached() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let store = temp + "/store"
        try FileSystem.createDirectories(store)
        try FileSystem.setPermissions(store, 0o777)
        let (result, status) = try await CacheProgClient.withProgram([chunkcache, "--dir", store]) { client in
            let stored = try await client.put(actionID(1), body: body(1))
            let bytes = try FileSystem.readFile(stored.diskPath)
            let entry = try await client.get(actionID(1))
            try await client.close()
            return (bytes == body(1), entry == nil)
        }
        #expect(result.0, "the put's DiskPath holds the body")
        #expect(result.1, "gets miss")
        #expect(status == 0)
        #expect(try FileSystem.contentsOfDirectory(store).isEmpty, "nothing written into the refused store")
    }

    @Test(
        "with --keep-decompressed, a later run's hits are links to kept files, with the right bytes (in the store, or in memory)",
        arguments: [false, true])
    func keptDecompressed(inMemory: Bool) async throws {
        defer { try? FileSystem.removeTree(temp) }
        let store = temp + "/store"
        let memoryKept = "/dev/shm/chunkcache-\(getuid())/kept/"
        if inMemory && LiveFiles.privateMemoryRoot() == nil { return }  // no /dev/shm here: nothing to check
        let arguments = [chunkcache, "--dir", store, "--keep-decompressed", "50MB"] + (inMemory ? ["--keep-in-memory"] : [])
        _ = try await CacheProgClient.withProgram(arguments) { client in
            for n in 0..<5 { _ = try await client.put(actionID(n), body: body(n)) }
            try await client.close()
        }
        let (linked, _) = try await CacheProgClient.withProgram(arguments) { client in
            var linked = 0
            for n in 0..<5 {
                let found = try await client.get(actionID(n))
                let entry = try #require(found)
                #expect(try FileSystem.readFile(entry.diskPath) == body(n))
                let kept = try FileSystem.status(of: (inMemory ? memoryKept : store + "/kept/") + entry.outputID.hex)
                if try FileSystem.status(of: entry.diskPath).inode == kept.inode { linked += 1 }
                if inMemory { try FileSystem.remove(memoryKept + entry.outputID.hex) }
            }
            try await client.close()
            return linked
        }
        #expect(linked == 5)
        let keptInStore = CacheStatistics(of: try ChunkStore(directory: store)).keptBytes
        #expect(inMemory ? keptInStore == 0 : keptInStore > 0, "kept where asked, not in both")
    }

    @Test(
        "a put larger than the in-memory body limit lands in memory like small ones, while the budget allows",
        .enabled(if: LiveFiles.privateMemoryRoot() != nil))
    func largePutInMemory() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let store = temp + "/store"
        let big = pseudoRandomBytes(3 << 20, seed: 5)
        for (arguments, inMemory) in [([String](), true), (["--live-in-memory", "0"], false)] {
            let (path, _) = try await CacheProgClient.withProgram([chunkcache, "--dir", store] + arguments) { client in
                let path = try await client.put(actionID(1), body: big).diskPath
                #expect(try FileSystem.readFile(path) == big)
                let hit = try #require(try await client.get(actionID(1)))
                #expect(try FileSystem.readFile(hit.diskPath) == big)
                try await client.close()
                return path
            }
            #expect(path.hasPrefix("/dev/shm/chunkcache-\(getuid())/") == inMemory, "\(path)")
            #expect(path.hasPrefix(store + "/live/") == !inMemory)
            #expect(try FileSystem.contentsOfDirectory(store + "/tmp").isEmpty)
        }
    }

    @Test(
        "on a full disk, puts of every size are answered with a file holding the body, and the store stays valid",
        .enabled(if: getuid() == 0 && LiveFiles.privateMemoryRoot() != nil))
    func fullDisk() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let small = temp + "/small"
        try FileSystem.createDirectories(small)
        #expect(try await run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", small]).status == 0)
        defer { _ = umount(small) }
        let store = small + "/store"
        _ = try await CacheProgClient.withProgram([chunkcache, "--dir", store]) { try await $0.close() }
        // Then the disk is filled, to its last 256 KiB (room for the catalog's write-ahead log).
        let filler = try FileDescriptor.open(small + "/filler", [.writeOnly, .create], permissions: 0o600)
        let block = [UInt8](repeating: 1, count: 4096)
        while try FileSystem.availableSpace(at: small) > 256 << 10 { try filler.writeAll(block) }
        filler.close()

        let sizes = [0, 1, 4096, 4097, 100_000, (1 << 20) + 1, 3 << 20]
        for arguments in [[], ["--live-in-memory", "0"]] {
            let (served, status) = try await CacheProgClient.withProgram([chunkcache, "--dir", store] + arguments) { client in
                var served = 0
                for (n, size) in sizes.enumerated() {
                    let body = pseudoRandomBytes(size, seed: UInt64(n))
                    let put = try await client.put(actionID(100 + n), body: body)
                    #expect(try FileSystem.readFile(put.diskPath) == body, "put of \(size) bytes, \(arguments)")
                    if let hit = try await client.get(actionID(100 + n)) {
                        #expect(try FileSystem.readFile(hit.diskPath) == body)
                    }
                    served += 1
                }
                try await client.close()
                return served
            }
            #expect(served == sizes.count)
            #expect(status == 0)
        }
        #expect(try ChunkStore(directory: store).verify(repair: false).isHealthy)
        #expect(try FileSystem.contentsOfDirectory(store + "/tmp").isEmpty, "no half-written body left")
    }

    @Test("each run served is recorded, newest last; the record is bounded, the oldest going first")
    func runHistory() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let store = temp + "/store"
        for _ in 0..<2 {
            _ = try await CacheProgClient.withProgram([chunkcache, "--dir", store]) { client in
                _ = try await client.put(actionID(1), body: body(1))
                _ = try await client.get(actionID(1))
                _ = try await client.get(actionID(2))
                try await client.close()
            }
        }
        let history = RunHistory(store: try ChunkStore(directory: store), limit: 10)
        let runs = history.last(5)
        #expect(runs.count == 2)
        #expect(runs.allSatisfy { $0.hits == 1 && $0.misses == 1 && $0.puts == 1 && $0.bytesServed == Int64(body(1).count) })
        #expect(runs[0].start <= runs[1].start)
        #expect(runs.allSatisfy { $0.version.hasPrefix("0.") })

        for n in 0..<40 {
            try history.append(RunRecord(
                start: Timestamp(nanosecondsSinceEpoch: Int64(n)), served: .milliseconds(n), after: .zero, hits: Int64(n), misses: 0, puts: 0, bytesServed: 0, bytesStored: 0,
                errors: 0, goVersion: "go1.27.3", version: "0.4.0 (test)"))
        }
        let all = history.last(1000)
        #expect(all.count >= 10 && all.count <= 20, "\(all.count) records kept")
        #expect(all.last?.hits == 39, "the newest is kept")
        #expect(all.last?.version == "0.4.0_(test)", "one token, spaces made underscores")
    }

    @Test("a failing disk (file-size limit): the big put gets Err, small ones and gets keep working")
    func failingDisk() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let store = temp + "/store"
        let big = pseudoRandomBytes(5 << 20, seed: 3)
        // ulimit -f counts 512-byte blocks in sh: files may not grow past 2 MiB.
        let limited = ["sh", "-c", "ulimit -f 4096; exec \"$0\" \"$@\"", chunkcache, "--dir", store]
        let (outcome, status) = try await CacheProgClient.withProgram(limited) { client in
            _ = try await client.put(actionID(1), body: body(1))
            var bigFailed = false
            do {
                _ = try await client.put(actionID(2), body: big)
            } catch let failure as CacheProgClient.Failure {
                bigFailed = failure.code == .requestFailed
            }
            let small = try await client.get(actionID(1))
            let smallBytes = try small.map { try FileSystem.readFile($0.diskPath) }
            let missing = try await client.get(actionID(2))
            _ = try await client.put(actionID(3), body: body(3))
            try await client.close()
            return (bigFailed, smallBytes == body(1), missing == nil)
        }
        #expect(outcome.0, "the put that cannot be written is answered with Err")
        #expect(outcome.1, "what was stored is still served")
        #expect(outcome.2, "the failed put left nothing behind")
        #expect(status == 0)
        #expect(try ChunkStore(directory: store).verify(repair: false).isHealthy)
        #expect(try FileSystem.contentsOfDirectory(store + "/tmp").isEmpty, "no half-written body left")
    }

    @Test("unknown flags and bad values are refused with a message and a non-zero exit", arguments: [
        ["--frobnicate"], ["--codec", "lz4"], ["--codec", "zlib", "--level", "12"], ["stats", "--bogus"],
    ])
    func badArguments(arguments: [String]) async throws {
        defer { try? FileSystem.removeTree(temp) }
        let (status, output) = try await run([chunkcache, "--dir", temp + "/store"] + arguments)
        #expect(status != 0)
        #expect(output.contains("Error"))
        #expect(!FileSystem.exists(temp + "/store"))
    }

    @Test("commands that only read (and trim, gc) refuse a missing or foreign directory, creating nothing", arguments: [
        ["stats"], ["stats", "--json"], ["verify"], ["export", "/tmp/chunkcache-test-never.archive"], ["gc"], ["trim"],
    ])
    func existingStoresOnly(arguments: [String]) async throws {
        defer { try? FileSystem.removeTree(temp) }
        let (missingStatus, missingOutput) = try await run([chunkcache] + arguments + ["--dir", temp + "/mistyped"])
        #expect(missingStatus != 0)
        #expect(missingOutput.contains("does not exist"))
        #expect(!FileSystem.exists(temp + "/mistyped"))

        let foreign = temp + "/photos"
        try FileSystem.createDirectories(foreign)
        try FileSystem.writeFileAtomically(foreign + "/holiday.jpg", Array("not a store".utf8))
        let (foreignStatus, foreignOutput) = try await run([chunkcache] + arguments + ["--dir", foreign])
        #expect(foreignStatus != 0)
        #expect(foreignOutput.contains("is not a chunkcache store"))
        #expect(try FileSystem.contentsOfDirectory(foreign) == ["holiday.jpg"], "nothing added beside the files there")
        #expect(!FileSystem.exists("/tmp/chunkcache-test-never.archive"))
    }

    @Test("serving never turns a non-empty directory that is not a store into one: the build is served uncached")
    func foreignDirectoryServesUncached() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let foreign = temp + "/src"
        try FileSystem.createDirectories(foreign)
        try FileSystem.writeFileAtomically(foreign + "/main.go", Array("package main".utf8))
        let (stored, status) = try await CacheProgClient.withProgram([chunkcache, "--dir", foreign]) { client in
            let stored = try await client.put(actionID(1), body: body(1))
            let bytes = try FileSystem.readFile(stored.diskPath)
            try await client.close()
            return bytes
        }
        #expect(stored == body(1), "the put is still answered with the body")
        #expect(status == 0)
        #expect(try FileSystem.contentsOfDirectory(foreign) == ["main.go"])
    }

    /// Runs `command` with no input; its exit status and what it wrote to stdout and stderr.
    func run(_ command: [String]) async throws -> (status: Int32, output: String) {
        let child = try ChildProcess.launch(["sh", "-c", "\"$0\" \"$@\" 2>&1"] + command, environment: nil)
        child.input.close()
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while case let n = try buffer.withUnsafeMutableBytes({ try child.output.read(into: $0) }), n > 0 { output += buffer[..<n] }
        child.output.close()
        return (await child.wait(), String(decoding: output, as: UTF8.self))
    }
}
