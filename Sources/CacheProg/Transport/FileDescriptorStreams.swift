import Dispatch
import FileIO
import Synchronization

/// Reads a file descriptor (a pipe, usually standard input) without blocking Swift's
/// cooperative threads: each read runs on a dispatch queue of its own.
public struct FileDescriptorReader: ByteReader {
    private let descriptor: FileDescriptor
    private let chunkSize: Int
    private let queue: DispatchQueue
    /// Where reads land before the bytes read are copied out: one buffer, reused (a fresh one
    /// of `chunkSize` per read would be zeroed, or mapped and unmapped, each time).
    private let buffer: Buffer

    private final class Buffer: Sendable {
        let bytes: Mutex<[UInt8]>
        init(size: Int) { bytes = Mutex([UInt8](repeating: 0, count: size)) }
    }

    /// Reads `descriptor` in chunks of up to `chunkSize` bytes.
    public init(_ descriptor: FileDescriptor, chunkSize: Int = 1 << 18) {
        self.descriptor = descriptor
        self.chunkSize = chunkSize
        self.queue = DispatchQueue(label: "FileDescriptorReader.\(descriptor.rawValue)")
        self.buffer = Buffer(size: chunkSize)
    }

    /// One read(2) into the buffer; the bytes read.
    private func readOnce() throws -> [UInt8] {
        try buffer.bytes.withLock { bytes in
            let count = try bytes.withUnsafeMutableBytes { try descriptor.read(into: $0) }
            return Array(bytes[..<count])
        }
    }

    public func read() async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try readOnce() })
            }
        }
    }
}

/// Writes a file descriptor (a pipe, usually standard output), one write at a time, in order.
///
/// By default a lock, not an actor: the write happens on the thread of the task that has the
/// response (a server's request task, on its handler's executor), with no hop to another thread
/// and back. That suits a server, whose writes are short (responses are small and the peer reads
/// them promptly). A client's writes are put bodies, which block for as long as the peer does not
/// read; on Swift's cooperative threads (one per core) a few of those can hold every thread, so
/// that the task that would read the peer's responses (and so unblock the peer) never runs.
/// `offThePool` sends each write to a dispatch queue of the writer's own instead.
public final class FileDescriptorWriter: ByteWriter {
    private let descriptor: FileDescriptor
    private let closesDescriptor: Bool
    /// Held for each write, so writes never interleave; true once closed.
    private let closed = Mutex(false)
    /// Where writes run when they must not block the caller's thread.
    private let queue: DispatchQueue?

    /// Writes to `descriptor`; `close()` closes it only if `closesDescriptor`. With `offThePool`,
    /// writes run on a thread of their own, never the caller's.
    public init(_ descriptor: FileDescriptor, closesDescriptor: Bool = false, offThePool: Bool = false) {
        self.descriptor = descriptor
        self.closesDescriptor = closesDescriptor
        self.queue = offThePool ? DispatchQueue(label: "FileDescriptorWriter.\(descriptor.rawValue)") : nil
    }

    private func writeNow(_ bytes: [UInt8]) throws {
        try closed.withLock { closed in
            guard !closed else { throw SystemError("write", code: 9 /* EBADF */) }
            try descriptor.writeAll(bytes)
        }
    }

    public func write(_ bytes: [UInt8]) async throws {
        guard let queue else { return try writeNow(bytes) }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            queue.async { continuation.resume(with: Result { try self.writeNow(bytes) }) }
        }
    }

    public func close() async {
        closed.withLock { closed in
            guard !closed else { return }
            closed = true
            if closesDescriptor { descriptor.close() }
        }
    }
}
