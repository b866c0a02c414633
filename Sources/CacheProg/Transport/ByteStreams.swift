/// Where a server reads requests, or a client reads responses: a stream of bytes.
public protocol ByteReader: Sendable {
    /// The next bytes available, waiting for at least one; an empty array at end of stream.
    func read() async throws -> [UInt8]
}

/// Where a server writes responses, or a client writes requests.
public protocol ByteWriter: Sendable {
    /// Writes all of `bytes`, in order with earlier writes.
    func write(_ bytes: [UInt8]) async throws
    /// Ends the stream: the reader at the other end sees end of stream.
    func close() async
}
