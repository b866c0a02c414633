import CacheProg
import Dispatch
import FileIO
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Writing to a pipe")
struct FileDescriptorWriterTests {
    /// The case a client meets: more put bodies in flight than the machine has cores, to a program
    /// that is not reading. Written on the callers' threads, they would hold all of Swift's
    /// cooperative threads (one per core), and the work that would let the program read again
    /// (reading its responses) could never run.
    @Test("writes to a peer that does not read leave Swift's cooperative threads free", .timeLimit(.minutes(2)))
    func writesOffThePool() async throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        let readEnd = ends[0]
        let writer = FileDescriptorWriter(FileDescriptor(rawValue: ends[1]), closesDescriptor: true, offThePool: true)
        let body = [UInt8](repeating: 7, count: 1 << 20)  // far more than a pipe holds
        let writes = 8
        // The peer reads, on a thread of its own, once told to; if never told within 10 s (the
        // cooperative threads all blocked), it starts anyway, so the test fails instead of hanging.
        let expected = writes * body.count
        let startReading = DispatchSemaphore(value: 0)
        let reading = Task {
            await onThreadOfItsOwn("peer") {
                let told = startReading.wait(timeout: .now() + .seconds(10)) == .success
                let reader = FileDescriptor(rawValue: readEnd)
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                var total = 0
                while total < expected, let n = try? buffer.withUnsafeMutableBytes({ try reader.read(into: $0) }), n > 0 { total += n }
                reader.close()
                return (told, total)
            }
        }
        let writing = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<writes { group.addTask { try await writer.write(body) } }
                try await group.waitForAll()
            }
        }
        // Nobody reads yet, so every write is blocked; other tasks still run.
        let others = await withTaskGroup(of: Int.self) { group in
            for n in 1...32 {
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(1))
                    return n
                }
            }
            return await group.reduce(0, +)
        }
        #expect(others == 32 * 33 / 2)
        startReading.signal()
        let (told, received) = await reading.value
        #expect(told, "other tasks ran only once the reader started by itself")
        try await writing.value
        #expect(received == expected)
        await writer.close()
    }
}
