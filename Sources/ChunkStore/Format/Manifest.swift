import CZlib
import Digests
import FileIO

/// What the store keeps per action: the output's ID, size and time, and either the output
/// itself (small outputs, inline) or the ordered list of its chunks.
///
/// Binary, little-endian: "CCM1", kind (0 inline, 1 chunked), 3 zero bytes, action key (32),
/// output ID (32), size i64, time ns i64, then for inline: codec, 3 zero bytes, length u32,
/// payload; for chunked: count u32, then 40-byte entries (SHA-256, size u32, 4 zero bytes);
/// last a CRC-32 of everything before it.
///
/// Chunks are named by hash only; where each is stored is the catalog's business, so packs can
/// be compacted without rewriting manifests.
public struct Manifest: Hashable, Sendable {
    /// One chunk of an output, in order: its SHA-256 and size.
    public struct Chunk: Hashable, Sendable {
        public var digest: SHA256Digest
        public var size: UInt32
    }

    /// Where the output's bytes are.
    public enum Content: Hashable, Sendable {
        case inline(codec: Codec, payload: [UInt8])
        case chunks([Chunk])
    }

    /// The action this is stored under.
    public var key: SHA256Digest
    /// SHA-256 of the whole output.
    public var outputID: SHA256Digest
    /// Bytes in the output.
    public var size: Int64
    /// When it was stored.
    public var time: Timestamp
    public var content: Content

    /// The first bytes of every encoded manifest.
    public static let magic: [UInt8] = Array("CCM1".utf8)
    /// Largest output accepted (and largest chunk count that can describe it).
    static let maxSize: Int64 = 1 << 40

    public func encoded() -> [UInt8] {
        // Sized exactly: a manifest of a huge output (a quarter of a million chunks for 4 GiB)
        // must not be copied while it grows.
        let body: Int
        switch content {
        case .inline(_, let payload): body = 8 + payload.count
        case .chunks(let chunks): body = 4 + 40 * chunks.count
        }
        var writer = BinaryWriter(capacity: 88 + body + 4)
        writer.append(Self.magic)
        switch content {
        case .inline: writer.append(UInt8(0))
        case .chunks: writer.append(UInt8(1))
        }
        writer.pad(3)
        writer.append(key)
        writer.append(outputID)
        writer.append(size)
        writer.append(time.nanosecondsSinceEpoch)
        switch content {
        case .inline(let codec, let payload):
            writer.append(codec.rawValue)
            writer.pad(3)
            writer.append(UInt32(payload.count))
            writer.append(payload)
        case .chunks(let chunks):
            writer.append(UInt32(chunks.count))
            for chunk in chunks {
                writer.append(chunk.digest)
                writer.append(chunk.size)
                writer.pad(4)
            }
        }
        writer.append(writer.bytes.withUnsafeBytes { Self.checksum($0) })
        return writer.bytes
    }

    /// Parses a manifest; throws `CorruptData` for anything malformed or inconsistent.
    public init(decoding bytes: [UInt8]) throws {
        do {
            self = try bytes.withUnsafeBytes { raw in
                guard raw.count >= 4 + 4 + 64 + 16 + 4 + 4 else { throw CorruptData(description: "manifest too short") }
                let body = UnsafeRawBufferPointer(rebasing: raw[..<(raw.count - 4)])
                let stored = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: raw.count - 4, as: UInt32.self))
                guard stored == Self.checksum(body) else { throw CorruptData(description: "manifest checksum mismatch") }
                var reader = BinaryReader(body)
                guard try reader.readBytes(4).elementsEqual(Self.magic) else { throw CorruptData(description: "not a manifest") }
                let kind = try reader.read(UInt8.self)
                try reader.skip(3)
                let key = try reader.readDigest()
                let outputID = try reader.readDigest()
                let size = try reader.read(Int64.self)
                let time = try reader.read(Int64.self)
                guard size >= 0, size <= Self.maxSize else { throw CorruptData(description: "manifest size out of range") }
                let content: Content
                switch kind {
                case 0:
                    guard let codec = Codec(rawValue: try reader.read(UInt8.self)) else { throw CorruptData(description: "unknown codec") }
                    try reader.skip(3)
                    let length = Int(try reader.read(UInt32.self))
                    content = .inline(codec: codec, payload: Array(try reader.readBytes(length)))
                case 1:
                    let count = Int(try reader.read(UInt32.self))
                    guard count * 40 == reader.remaining else { throw CorruptData(description: "chunk list length mismatch") }
                    var chunks: [Chunk] = []
                    chunks.reserveCapacity(count)
                    var total: Int64 = 0
                    for _ in 0..<count {
                        let digest = try reader.readDigest()
                        let size = try reader.read(UInt32.self)
                        try reader.skip(4)
                        guard size > 0 else { throw CorruptData(description: "empty chunk in manifest") }
                        total += Int64(size)
                        chunks.append(Chunk(digest: digest, size: size))
                    }
                    guard total == size else { throw CorruptData(description: "chunks add up to \(total) bytes, manifest says \(size)") }
                    content = .chunks(chunks)
                default:
                    throw CorruptData(description: "unknown manifest kind \(kind)")
                }
                guard reader.remaining == 0 else { throw CorruptData(description: "trailing bytes in manifest") }
                return Manifest(key: key, outputID: outputID, size: size, time: Timestamp(nanosecondsSinceEpoch: time), content: content)
            }
        } catch is BinaryReader.Truncated {
            throw CorruptData(description: "manifest truncated")
        }
    }

    init(key: SHA256Digest, outputID: SHA256Digest, size: Int64, time: Timestamp, content: Content) {
        self.key = key
        self.outputID = outputID
        self.size = size
        self.time = time
        self.content = content
    }

    private static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(crc32(0, bytes.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(bytes.count)))
    }
}
