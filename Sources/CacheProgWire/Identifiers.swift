import Digests

/// What `ActionID` and `OutputID` share: 32 bytes, spelled in lower-case hex in file names and
/// logs (so no byte of a peer's ever reaches a path unencoded).
public protocol ThirtyTwoByteIdentifier: Hashable, Sendable, CustomStringConvertible {
    /// The identifier's bytes; always 32 of them.
    var bytes: [UInt8] { get }
    /// Wraps `bytes`; nil unless there are exactly 32.
    init?(bytes: [UInt8])
}

extension ThirtyTwoByteIdentifier {
    /// Bytes in an identifier.
    public static var byteCount: Int { 32 }

    /// Parses 64 hex digits.
    public init?(hex: some StringProtocol) {
        guard let bytes = Hex.decode(hex) else { return nil }
        self.init(bytes: bytes)
    }

    /// Lower-case hex, 64 digits.
    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }
}

/// The go command's cache key for one build action.
public struct ActionID: ThirtyTwoByteIdentifier {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = bytes
    }
}

/// The SHA-256 of an output's body, as the go command computes it.
public struct OutputID: ThirtyTwoByteIdentifier {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = bytes
    }

    /// The output ID of `body`: its SHA-256.
    public init(of body: some Collection<UInt8>) {
        self.bytes = SHA256.hash(body).bytes
    }

    /// The output ID for a digest computed elsewhere.
    public init(_ digest: SHA256Digest) { self.bytes = digest.bytes }
}
