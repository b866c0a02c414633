import CacheProg
import Synchronization

/// A one-way byte pipe in memory, for running a server and a client in one process (tests,
/// tools). Write to `writer`; read from `reader`.
public final class InMemoryPipe: Sendable {
    private struct State {
        var buffered: [[UInt8]] = []
        var closed = false
        var waiting: CheckedContinuation<[UInt8], Never>?
    }

    private let state = Mutex(State())

    public init() {}

    /// The end that writes.
    public var writer: some ByteWriter { Writer(pipe: self) }
    /// The end that reads.
    public var reader: some ByteReader { Reader(pipe: self) }

    fileprivate func append(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        let waiter: CheckedContinuation<[UInt8], Never>? = try state.withLock { state in
            guard !state.closed else { throw PipeClosed() }
            if let waiter = state.waiting {
                state.waiting = nil
                return waiter
            }
            state.buffered.append(bytes)
            return nil
        }
        waiter?.resume(returning: bytes)
    }

    fileprivate func close() {
        let waiter = state.withLock { state in
            state.closed = true
            defer { state.waiting = nil }
            return state.waiting
        }
        waiter?.resume(returning: [])
    }

    fileprivate func next() async -> [UInt8] {
        await withCheckedContinuation { continuation in
            let ready: [UInt8]? = state.withLock { state in
                if !state.buffered.isEmpty { return state.buffered.removeFirst() }
                if state.closed { return [] }
                state.waiting = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Writing to a pipe whose writer closed it.
    public struct PipeClosed: Error {}

    private struct Writer: ByteWriter {
        let pipe: InMemoryPipe
        func write(_ bytes: [UInt8]) async throws { try pipe.append(bytes) }
        func close() async { pipe.close() }
    }

    private struct Reader: ByteReader {
        let pipe: InMemoryPipe
        func read() async throws -> [UInt8] { await pipe.next() }
    }
}
