import Digests

// The wire layer's vocabulary includes the protocol's `Time` (a `Timestamp`, defined beside the
// clock in FileIO so that the store below the protocol speaks of time the same way).
@_exported import struct FileIO.Timestamp
@_exported import struct Digests.SHA256Digest

/// What `ActionID` and `OutputID` share: a SHA-256-sized value held inline (no heap array),
/// spelled in lower-case hex in file names and logs (so no byte of a peer's ever reaches a path
/// unencoded).
public protocol ThirtyTwoByteIdentifier: Hashable, Sendable, CustomStringConvertible {
    /// The identifier as a digest, the store's key type.
    var digest: SHA256Digest { get }
    init(_ digest: SHA256Digest)
}

extension ThirtyTwoByteIdentifier {
    /// Bytes in an identifier.
    public static var byteCount: Int { 32 }

    /// Wraps `bytes`; nil unless there are exactly 32.
    public init?(bytes: some Collection<UInt8>) {
        guard let digest = SHA256Digest(bytes: bytes) else { return nil }
        self.init(digest)
    }

    /// Parses 64 hex digits.
    public init?(hex: some StringProtocol) {
        guard let digest = SHA256Digest(hex: hex) else { return nil }
        self.init(digest)
    }

    /// The identifier's 32 bytes (a new array: for the wire, not for keys).
    public var bytes: [UInt8] { digest.bytes }
    /// Lower-case hex, 64 digits.
    public var hex: String { digest.hex }
    public var description: String { hex }
}

/// The go command's cache key for one build action.
public struct ActionID: ThirtyTwoByteIdentifier {
    public let digest: SHA256Digest
    public init(_ digest: SHA256Digest) { self.digest = digest }
}

/// The SHA-256 of an output's body, as the go command computes it.
public struct OutputID: ThirtyTwoByteIdentifier {
    public let digest: SHA256Digest
    public init(_ digest: SHA256Digest) { self.digest = digest }

    /// The output ID of `body`: its SHA-256.
    public init(of body: some Collection<UInt8>) {
        self.digest = SHA256.hash(body)
    }
}
