import Digests
import FileIO

/// A store (or part of one) in a single file, for CI cache save and restore.
///
///     "CCARCH01"
///     records: kind u8, length u64, payload
///       1 chunk:    SHA-256 (32), codec u8, raw size u32, encoded payload (as stored in packs)
///       2 manifest: last use i64, encoded manifest
///       3 dictionary: a zstd dictionary chunks are compressed with (before any such chunk)
///     trailer:  kind 0xFF, length 32, SHA-256 of every byte before the trailer
///
/// An archive made with a base holds only the chunks and manifests the base lacks; importing
/// the base and then it restores the whole. Importing checks the trailer first, then every chunk
/// against its hash and every manifest's chunks, before changing the store at all.
enum ArchiveFormat {
    static let magic = Array("CCARCH01".utf8)
    static let chunkKind: UInt8 = 1
    static let manifestKind: UInt8 = 2
    static let dictionaryKind: UInt8 = 3
    static let trailerKind: UInt8 = 0xFF
    /// No record is larger (a chunk is at most 4 × 64 KiB; a manifest of a 1 TiB output fits).
    static let maxRecord: UInt64 = 1 << 31
}

/// Writes an archive to a temporary file beside its destination, renamed into place at the end.
final class ArchiveWriter {
    private let descriptor: FileDescriptor
    private let temporary: String
    private let destination: String
    private var hasher: SHA256? = SHA256()
    private var buffer: [UInt8] = []
    private(set) var size: Int64 = 0

    init(path: String) throws {
        destination = path
        temporary = FileSystem.temporaryName(beside: path)
        descriptor = try FileDescriptor.open(temporary, [.writeOnly, .create, .exclusive], permissions: 0o600)
        append(ArchiveFormat.magic)
    }

    private func append(_ bytes: some Collection<UInt8>) {
        hasher!.update(bytes)
        buffer.append(contentsOf: bytes)
    }

    private func flushIfFull() throws {
        if buffer.count >= 1 << 20 { try flush() }
    }

    private func flush() throws {
        try descriptor.writeAll(buffer)
        size += Int64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }

    func record(_ kind: UInt8, _ parts: [UInt8]...) throws {
        var header = BinaryWriter(capacity: 9)
        header.append(kind)
        header.append(UInt64(parts.reduce(0) { $0 + $1.count }))
        append(header.bytes)
        for part in parts { append(part) }
        try flushIfFull()
    }

    /// Writes the trailer and moves the archive into place.
    func finish() throws {
        let digest = hasher.take()!.finalize()
        var trailer = BinaryWriter(capacity: 41)
        trailer.append(ArchiveFormat.trailerKind)
        trailer.append(UInt64(SHA256.byteCount))
        trailer.append(digest)
        buffer.append(contentsOf: trailer.bytes)
        try flush()
        try descriptor.sync()
        descriptor.close()
        try FileSystem.rename(temporary, to: destination)
    }

    func abandon() {
        descriptor.close()
        try? FileSystem.remove(temporary)
    }
}

/// Reads an archive's records in order.
struct ArchiveReader {
    private let descriptor: FileDescriptor
    private let path: String
    /// The archive's size, and where the next record starts.
    let size: Int64
    private(set) var position: Int64 = 0

    init(path: String) throws {
        self.path = path
        descriptor = try FileDescriptor.open(path, [.readOnly])
        size = try descriptor.status().size
    }

    func close() { descriptor.close() }

    private func read(_ count: Int, at position: Int64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = try bytes.withUnsafeMutableBytes { try descriptor.readFully(into: $0, at: position) }
        guard n == count else { throw StoreError(.badArchive, "\(path): truncated") }
        return bytes
    }

    /// Checks the magic and the trailer's hash of the whole file.
    mutating func checkIntegrity() throws {
        guard size >= Int64(ArchiveFormat.magic.count + 41) else { throw StoreError(.badArchive, "\(path): too short to be an archive") }
        guard try read(8, at: 0) == ArchiveFormat.magic else { throw StoreError(.badArchive, "\(path): not a chunkcache archive") }
        let trailer = try read(41, at: size - 41)
        guard trailer[0] == ArchiveFormat.trailerKind, trailer[1...8].elementsEqual([32, 0, 0, 0, 0, 0, 0, 0]) else {
            throw StoreError(.badArchive, "\(path): truncated (no trailer)")
        }
        var hasher = SHA256()
        var hashed: Int64 = 0
        while hashed < size - 41 {
            let count = Int(min(1 << 20, size - 41 - hashed))
            hasher.update(try read(count, at: hashed))
            hashed += Int64(count)
        }
        guard hasher.finalize() == SHA256Digest(bytes: trailer[9...]) else {
            throw StoreError(.badArchive, "\(path): damaged or tampered with (checksum mismatch)")
        }
        position = Int64(ArchiveFormat.magic.count)
    }

    /// The next record, or nil at the trailer.
    mutating func next() throws -> (kind: UInt8, payload: [UInt8])? {
        guard position < size - 41 else { return nil }
        let header = try read(9, at: position)
        let length = header.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 1, as: UInt64.self)) }
        guard length <= ArchiveFormat.maxRecord, position + 9 + Int64(length) <= size - 41 else {
            throw StoreError(.badArchive, "\(path): bad record length at \(position)")
        }
        let payload = try read(Int(length), at: position + 9)
        position += 9 + Int64(length)
        return (header[0], payload)
    }
}
