import Digests

/// Little-endian fixed-width fields for the store's binary formats.
struct BinaryWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func append(_ value: some FixedWidthInteger) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ digest: SHA256Digest) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: SHA256.byteCount))
        bytes.withUnsafeMutableBytes { digest.write(to: UnsafeMutableRawBufferPointer(rebasing: $0[start...])) }
    }

    mutating func append(_ raw: [UInt8]) { bytes.append(contentsOf: raw) }

    mutating func pad(_ count: Int) { bytes.append(contentsOf: repeatElement(0, count: count)) }
}

/// Reads what `BinaryWriter` wrote, checking every bound: malformed input throws, never traps.
struct BinaryReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    struct Truncated: Error {}

    var remaining: Int { bytes.count - offset }

    mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw Truncated() }
        defer { offset += size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    mutating func readDigest() throws -> SHA256Digest {
        guard remaining >= SHA256.byteCount else { throw Truncated() }
        defer { offset += SHA256.byteCount }
        return SHA256Digest(unsafeBytes: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + SHA256.byteCount]))
    }

    mutating func readBytes(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else { throw Truncated() }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    mutating func skip(_ count: Int) throws { _ = try readBytes(count) }
}
