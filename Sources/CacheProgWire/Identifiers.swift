import Digests

/// The go command's cache key for one build action: 32 bytes, hex in file names and logs.
public struct ActionID: Hashable, Sendable, CustomStringConvertible {
    /// The identifier's bytes; always `ActionID.byteCount` of them.
    public let bytes: [UInt8]
    /// Bytes in an action ID.
    public static let byteCount = 32

    /// Wraps `bytes`; nil unless there are exactly 32.
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = bytes
    }

    /// Parses 64 hex digits.
    public init?(hex: some StringProtocol) {
        guard let bytes = Hex.decode(hex) else { return nil }
        self.init(bytes: bytes)
    }

    /// Lower-case hex, 64 digits: safe as a file name whatever the bytes were.
    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }
}

/// The SHA-256 of an output's body, as the go command computes it: 32 bytes.
public struct OutputID: Hashable, Sendable, CustomStringConvertible {
    /// The identifier's bytes; always `OutputID.byteCount` of them.
    public let bytes: [UInt8]
    /// Bytes in an output ID.
    public static let byteCount = 32

    /// Wraps `bytes`; nil unless there are exactly 32.
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = bytes
    }

    /// Parses 64 hex digits.
    public init?(hex: some StringProtocol) {
        guard let bytes = Hex.decode(hex) else { return nil }
        self.init(bytes: bytes)
    }

    /// The output ID of `body`: its SHA-256.
    public init(of body: some Collection<UInt8>) {
        self.bytes = SHA256.hash(body).bytes
    }

    /// The output ID for a digest computed elsewhere.
    public init(_ digest: SHA256Digest) { self.bytes = digest.bytes }

    /// Lower-case hex, 64 digits.
    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }
}
