import ChunkStore
import Digests
import FileIO

/// Decompressed outputs kept between runs, up to a budget, so that a warm build need not write
/// every output back to disk: a hit on a kept output is a hard link into the process's live
/// directory (no data written, no new inode). Off unless given a budget: it trades disk for
/// warm-build speed.
///
/// Files are named by output ID and never modified; each was checked against its output ID when
/// it was written (or came from the go command's own put). Recency is the inode's change time,
/// which every new hard link updates, so use is recorded without any extra write.
public final class KeptOutputs: Sendable {
    /// The name of its directory in the store (an auxiliary directory of the store's) and in memory.
    public static let directoryName = "kept"
    public let directory: String
    /// Bytes the kept files may take; over it, the least recently linked go first.
    public let budget: Int64

    public init(root: String, budget: Int64) throws {
        directory = root
        self.budget = budget
        try FileSystem.createDirectory(root, permissions: 0o700)
    }

    /// Links the kept copy of `outputID` to `path`, if there is one of `size` bytes.
    public func link(_ outputID: SHA256Digest, size: Int64, to path: String) -> Bool {
        let kept = directory + "/" + outputID.hex
        guard let info = try? FileSystem.status(of: kept, followLinks: false), info.isRegularFile, info.size == size else { return false }
        do {
            try FileSystem.hardLink(kept, as: path)
            return true
        } catch {
            return (try? FileSystem.status(of: path, followLinks: false))?.size == size
        }
    }

    /// Keeps the file at `path` (already checked) as the copy of `outputID`.
    public func keep(_ path: String, as outputID: SHA256Digest) {
        try? FileSystem.hardLink(path, as: directory + "/" + outputID.hex)
    }

    /// Deletes the least recently used kept files until they fit in 90 % of the budget.
    @discardableResult
    public func trim() -> Int64 {
        var entries: [(path: String, used: Int64, size: Int64)] = []
        var total: Int64 = 0
        for name in (try? FileSystem.contentsOfDirectory(directory)) ?? [] {
            let path = directory + "/" + name
            guard let info = try? FileSystem.status(of: path, followLinks: false) else { continue }
            entries.append((path, info.changeTime, info.allocatedSize))
            total += info.allocatedSize
        }
        guard total > budget else { return 0 }
        var freed: Int64 = 0
        for entry in entries.sorted(by: { $0.used < $1.used }) where total - freed > budget / 10 * 9 {
            try? FileSystem.remove(entry.path)
            freed += entry.size
        }
        return freed
    }
}
