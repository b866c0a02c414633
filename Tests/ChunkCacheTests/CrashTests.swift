@testable import CacheProg
import ChunkStore
import Digests
import FileIO
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Crashes: kill -9 at random moments")
struct CrashTests {
    @Test("after 50 kills at random moments, every acknowledged put is served and the store verifies clean")
    func killStorm() async throws {
        let scene = CrashScene()
        let (store, binary) = (scene.store, scene.binary)
        let acknowledged = Acknowledged()
        // At least 50 rounds, and more (up to 100) while fewer than 20 puts were acknowledged, so
        // a slow, loaded machine still tests something.
        var round = 0
        while round < 50 || (acknowledged.all.count < 20 && round < 100) {
            defer { round += 1 }
            // Live files on disk, in the test's store: rounds cut off after end of input would
            // otherwise leave them in this user's memory area until a later run sweeps them.
            let child = try ChildProcess.launch([binary, "--dir", store, "--live-in-memory", "0"], environment: nil)
            let killer = Task {
                try? await Task.sleep(for: .milliseconds(Int.random(in: 10...200)))
                child.kill()
            }
            _ = try? await CacheProgClient.withConnection(
                reader: FileDescriptorReader(child.output), writer: FileDescriptorWriter(child.input, closesDescriptor: true),
                exitTimeout: .seconds(5), terminate: { child.kill() }
            ) { client in
                await withTaskGroup(of: Void.self) { group in
                    for i in 0..<40 {
                        let n = round * 100 + i
                        group.addTask {
                            if (try? await client.put(actionID(n), body: body(n))) != nil {
                                acknowledged.insert(n)
                            }
                        }
                    }
                }
            }
            killer.cancel()
            child.kill()
            _ = await child.wait()
            child.output.close()
        }
        let acked = acknowledged.all
        #expect(acked.count >= 20, "the storm should have acknowledged some puts")
        let lost = try await scene.lostPuts(acked.sorted(), body: body)
        #expect(lost.isEmpty, "acknowledged puts lost: \(lost.prefix(10))")
        let report = try ChunkStore(directory: store).verify(repair: false)
        #expect(report.isHealthy, "\(report.damaged.prefix(3))")
    }

    @Test("kill -9 while a run's chunks are recompressed (20 rounds): every acknowledged put is served and the store verifies clean")
    func killRecompression() async throws {
        let scene = CrashScene()
        let (store, binary) = (scene.store, scene.binary)
        /// Text-like bytes: zstd-19 shrinks them well past zstd-1, slowly, so the recompression
        /// after each run lasts long enough to be killed in the middle.
        func output(_ n: Int) -> [UInt8] {
            let noise = pseudoRandomBytes(150_000, seed: UInt64(n))
            let words = ["func ", "return ", "package ", "import ", "runtime.", "(*T).", "\n\t", "go:build "].map { Array($0.utf8) }
            return noise.enumerated().flatMap { index, byte in index % 3 == 0 ? [byte] : words[Int(byte) % words.count] }
        }
        var acknowledged: [Int] = []
        for round in 0..<20 {
            let child = try ChildProcess.launch([binary, "--dir", store, "--recompress-level", "19"], environment: nil)
            _ = try? await CacheProgClient.withConnection(
                reader: FileDescriptorReader(child.output), writer: FileDescriptorWriter(child.input, closesDescriptor: true),
                exitTimeout: .seconds(30), terminate: { child.kill() }
            ) { client in
                for i in 0..<4 {
                    let n = round * 10 + i
                    _ = try await client.put(actionID(n), body: output(n))
                    acknowledged.append(n)
                }
                try await client.close()
                // The run is over for the client; chunkcache now recompresses what it stored.
                Task {
                    try? await Task.sleep(for: .milliseconds(Int.random(in: 0...300)))
                    child.kill()
                }
            }
            child.kill()
            _ = await child.wait()
            child.output.close()
            let report = try ChunkStore(directory: store).verify(repair: false)
            #expect(report.isHealthy, "round \(round): \(report.damaged.prefix(2))")
        }
        #expect(acknowledged.count == 80)
        let lost = try await scene.lostPuts(acknowledged, body: output)
        #expect(lost.isEmpty, "acknowledged puts lost: \(lost.prefix(10))")
    }

    @Test("kill -9 during trim, gc and import (20 rounds each): the store always verifies clean")
    func killMaintenance() async throws {
        let scene = CrashScene()
        let (temp, store, binary) = (scene.temp, scene.store, scene.binary)
        func fill(_ range: Range<Int>) async throws {
            _ = try await CacheProgClient.withProgram([binary, "--dir", store, "--max-size", "unlimited"]) { client in
                for n in range { _ = try await client.put(actionID(n), body: pseudoRandomBytes(30_000 + n * 97, seed: UInt64(n))) }
                try await client.close()
            }
        }
        func killAfterRandomDelay(_ arguments: [String]) async throws {
            let child = try ChildProcess.launch([binary] + arguments, environment: nil)
            child.input.close()
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...60)))
            child.kill()
            _ = await child.wait()
            child.output.close()
        }
        for round in 0..<20 {
            try await fill(round * 20..<round * 20 + 20)
            try await killAfterRandomDelay(["trim", "--dir", store, "--max-size", "1MB"])
            try await killAfterRandomDelay(["gc", "--dir", store])
            let report = try ChunkStore(directory: store).verify(repair: false)
            #expect(report.isHealthy, "round \(round): \(report.damaged.prefix(2))")
        }
        let archive = temp + "/all.archive"
        try ChunkStore(directory: store).exportArchive(to: archive)
        for round in 0..<20 {
            let target = temp + "/import-\(round)"
            try await killAfterRandomDelay(["import", "--dir", target, archive])
            if FileSystem.exists(target + "/catalog.db") {
                let report = try ChunkStore(directory: target).verify(repair: false)
                #expect(report.isHealthy, "import round \(round): \(report.damaged.prefix(2))")
            }
        }
    }
}

/// A store in a temporary directory (removed at the end) and the chunkcache binary that the
/// crash tests start and kill.
struct CrashScene: ~Copyable {
    let temp = "/tmp/chunkcache-crash-" + FileSystem.uniqueSuffix()
    var store: String { temp + "/store" }
    let binary = productsDirectory + "/chunkcache"

    deinit { try? FileSystem.removeTree(temp) }

    /// The acknowledged puts among `numbers` that a fresh run does not serve with `body(n)`.
    func lostPuts(_ numbers: [Int], body: (Int) -> [UInt8]) async throws -> [Int] {
        let (lost, _) = try await CacheProgClient.withProgram([binary, "--dir", store, "--recompress-level", "0"]) { client in
            var lost: [Int] = []
            for n in numbers where try await client.get(actionID(n)).map({ try FileSystem.readFile($0.diskPath) }) != body(n) {
                lost.append(n)
            }
            try await client.close()
            return lost
        }
        return lost
    }
}

/// The puts that were answered, shared by the tasks sending them.
final class Acknowledged: Sendable {
    private let numbers = Mutex<Set<Int>>([])
    func insert(_ n: Int) { numbers.withLock { _ = $0.insert(n) } }
    var all: Set<Int> { numbers.withLock { $0 } }
}
