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
/// A lock, not an actor: the write happens on the thread of the task that has the response (a
/// server's request task, on its handler's executor), with no hop to another thread and back.
/// Writes are blocking but short (responses are small and the peer reads them promptly); a
/// writer of large requests (a client's put bodies) blocks its own thread for as long.
public final class FileDescriptorWriter: ByteWriter {
    private let descriptor: FileDescriptor
    private let closesDescriptor: Bool
    /// Held for each write, so writes never interleave; true once closed.
    private let closed = Mutex(false)

    /// Writes to `descriptor`; `close()` closes it only if `closesDescriptor`.
    public init(_ descriptor: FileDescriptor, closesDescriptor: Bool = false) {
        self.descriptor = descriptor
        self.closesDescriptor = closesDescriptor
    }

    public func write(_ bytes: [UInt8]) async throws {
        try closed.withLock { closed in
            guard !closed else { throw SystemError("write", code: 9 /* EBADF */) }
            try descriptor.writeAll(bytes)
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
