import CLibCrypto

/// A SHA-256 digest: 32 bytes held inline (no allocation), compared and hashed by value.
public struct SHA256Digest: Hashable, Sendable, Comparable, CustomStringConvertible {
    // The bytes in order, 8 per word, big-endian within each word so that comparing words
    // compares bytes.
    private var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    /// Wraps `bytes`; returns nil unless there are exactly 32 of them.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == SHA256.byteCount else { return nil }
        let array = Array(bytes)
        self.init(unsafeBytes: array.withUnsafeBytes { $0 })
    }

    /// Reads 32 bytes from `raw`, which must hold at least that many.
    public init(unsafeBytes raw: UnsafeRawBufferPointer) {
        precondition(raw.count >= SHA256.byteCount)
        func word(_ i: Int) -> UInt64 { UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
        (w0, w1, w2, w3) = (word(0), word(1), word(2), word(3))
    }

    /// Parses 64 hexadecimal digits; returns nil for anything else.
    public init?(hex: some StringProtocol) {
        guard let bytes = Hex.decode(hex) else { return nil }
        self.init(bytes: bytes)
    }

    /// The first 8 bytes, big-endian: a short key for a digest (for a list of many, where one
    /// collision among them costs little).
    public var leadingWord: UInt64 { w0 }

    /// The digest's 32 bytes.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: SHA256.byteCount)
        out.withUnsafeMutableBytes { write(to: $0) }
        return out
    }

    /// Writes the 32 bytes to the start of `destination`.
    public func write(to destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count >= SHA256.byteCount)
        for (i, word) in [w0, w1, w2, w3].enumerated() {
            destination.storeBytes(of: word.bigEndian, toByteOffset: i * 8, as: UInt64.self)
        }
    }

    /// Lower-case hexadecimal, 64 digits.
    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }

    public static func < (lhs: SHA256Digest, rhs: SHA256Digest) -> Bool {
        (lhs.w0, lhs.w1, lhs.w2, lhs.w3) < (rhs.w0, rhs.w1, rhs.w2, rhs.w3)
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
        withUnsafeTemporaryAllocation(byteCount: SHA256.byteCount, alignment: 8) { out in
            var length: UInt32 = 0
            _ = EVP_DigestFinal_ex(context, out.baseAddress!.assumingMemoryBound(to: UInt8.self), &length)
            return SHA256Digest(unsafeBytes: UnsafeRawBufferPointer(out))
        }
    }

    /// The digest of `bytes`, in one call.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> SHA256Digest {
        withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 8) { out in
            // SHA256() is libcrypto's one-shot digest; a nil pointer is fine when the count is 0.
            _ = CLibCrypto.SHA256(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
            return SHA256Digest(unsafeBytes: UnsafeRawBufferPointer(out))
        }
    }

    /// The digest of `bytes`, in one call.
    public static func hash(_ bytes: some Collection<UInt8>) -> SHA256Digest {
        if let digest = bytes.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0)) }) {
            return digest
        }
        return Array(bytes).withUnsafeBytes { hash($0) }
    }
}
