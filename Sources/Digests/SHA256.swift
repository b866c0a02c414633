import CLibCrypto

/// A SHA-256 digest: 32 bytes, compared and hashed by value.
public struct SHA256Digest: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The digest's 32 bytes.
    public let bytes: [UInt8]

    /// Wraps `bytes`; returns nil unless there are exactly 32 of them.
    public init?(bytes: [UInt8]) {
        guard bytes.count == SHA256.byteCount else { return nil }
        self.bytes = bytes
    }

    /// Parses 64 hexadecimal digits; returns nil for anything else.
    public init?(hex: some StringProtocol) {
        guard let bytes = Hex.decode(hex), bytes.count == SHA256.byteCount else { return nil }
        self.bytes = bytes
    }

    /// Lower-case hexadecimal, 64 digits.
    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }

    public static func < (lhs: SHA256Digest, rhs: SHA256Digest) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}

/// SHA-256 from the system's libcrypto (OpenSSL), which uses the CPU's SHA extensions where present.
///
/// Use `SHA256.hash(_:)` for data in memory, or an instance to hash a stream piece by piece.
/// Not `Sendable`: an instance owns a mutable OpenSSL context and is used by one task at a time.
public struct SHA256: ~Copyable {
    /// Bytes in a digest.
    public static let byteCount = 32

    private let context: OpaquePointer

    /// Starts an empty hash.
    public init() {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            fatalError("libcrypto could not initialise SHA-256")  // only on allocation failure
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    /// Adds `bytes` to the hash.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    /// Adds `bytes` to the hash.
    public mutating func update(_ bytes: some Collection<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { update(UnsafeRawBufferPointer($0)) }
        if done == nil { Array(bytes).withUnsafeBytes { update($0) } }
    }

    /// Ends the hash and returns its digest.
    public consuming func finalize() -> SHA256Digest {
        var out = [UInt8](repeating: 0, count: SHA256.byteCount)
        var length: UInt32 = 0
        out.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        return SHA256Digest(bytes: out)!
    }

    /// The digest of `bytes`, in one call.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> SHA256Digest {
        var out = [UInt8](repeating: 0, count: byteCount)
        out.withUnsafeMutableBufferPointer { dst in
            var length: UInt32 = 0
            // EVP_Digest accepts a nil pointer for empty input only when the count is 0.
            _ = EVP_Digest(bytes.baseAddress, bytes.count, dst.baseAddress, &length, EVP_sha256(), nil)
        }
        return SHA256Digest(bytes: out)!
    }

    /// The digest of `bytes`, in one call.
    public static func hash(_ bytes: some Collection<UInt8>) -> SHA256Digest {
        if let digest = bytes.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0)) }) {
            return digest
        }
        return Array(bytes).withUnsafeBytes { hash($0) }
    }
}
