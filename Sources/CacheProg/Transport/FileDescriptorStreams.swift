import Dispatch
import FileIO

/// Reads a file descriptor (a pipe, usually standard input) without blocking Swift's
/// cooperative threads: each read runs on a dispatch queue of its own.
public struct FileDescriptorReader: ByteReader {
    private let descriptor: FileDescriptor
    private let chunkSize: Int
    private let queue: DispatchQueue

    /// Reads `descriptor` in chunks of up to `chunkSize` bytes.
    public init(_ descriptor: FileDescriptor, chunkSize: Int = 1 << 18) {
        self.descriptor = descriptor
        self.chunkSize = chunkSize
        self.queue = DispatchQueue(label: "FileDescriptorReader.\(descriptor.rawValue)")
    }

    public func read() async throws -> [UInt8] {
        let descriptor = self.descriptor
        let chunkSize = self.chunkSize
        return try await withCheckedThrowingContinuation { continuation in
            queue.async {
                var buffer = [UInt8](repeating: 0, count: chunkSize)
                do {
                    let count = try buffer.withUnsafeMutableBytes { try descriptor.read(into: $0) }
                    buffer.removeLast(chunkSize - count)
                    continuation.resume(returning: buffer)
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}

/// Writes a file descriptor (a pipe, usually standard output), one write at a time, in order.
public actor FileDescriptorWriter: ByteWriter {
    private let descriptor: FileDescriptor
    private let closesDescriptor: Bool
    private var closed = false

    /// Writes to `descriptor`; `close()` closes it only if `closesDescriptor`.
    public init(_ descriptor: FileDescriptor, closesDescriptor: Bool = false) {
        self.descriptor = descriptor
        self.closesDescriptor = closesDescriptor
    }

    public func write(_ bytes: [UInt8]) async throws {
        guard !closed else { throw SystemError("write", code: 9 /* EBADF */) }
        // A blocking write inside the actor: responses are small and the peer reads them
        // promptly, so this holds a cooperative thread only briefly.
        try descriptor.writeAll(bytes)
    }

    public func close() async {
        guard !closed else { return }
        closed = true
        if closesDescriptor { descriptor.close() }
    }
}
