import Digests
import FileIO

#if canImport(Glibc)
import Glibc
#endif

/// Where this process puts the files it hands out: a directory in memory (tmpfs) while a budget
/// lasts, else its directory on the store's filesystem.
///
/// Live files are transient (removed when the build ends), so writing them to disk is wasted
/// I/O, and on ext4 creating and deleting a thousand files per build in quick succession makes
/// inode allocation slow (it skips recently deleted inodes one by one). In memory neither cost
/// exists. The budget bounds the memory taken; past it, or when the memory filesystem is full,
/// files go to disk as before.
public final class LiveFiles: Sendable {
    /// This process's directory on the store's filesystem; always there.
    public let disk: LiveArea
    /// This process's directory in memory, if one could be had.
    public let memory: LiveArea?
    /// Bytes of files this process may put in memory.
    public let memoryBudget: Int64
    private let memoryUsed = AtomicCounter()

    /// - Parameters:
    ///   - diskRoot: the store's live root.
    ///   - memoryRoot: a private directory on a memory filesystem (see `privateMemoryRoot`), or
    ///     nil; live files go to its `live/`.
    ///   - memoryBudget: at most this many bytes go to memory.
    public init(diskRoot: String, memoryRoot: String?, memoryBudget: Int64) throws {
        disk = try LiveArea(root: diskRoot)
        memory = memoryBudget > 0 ? memoryRoot.flatMap { try? LiveArea(root: $0 + "/live") } : nil
        self.memoryBudget = memory == nil ? 0 : memoryBudget
    }

    /// The file already handed out for `outputID` in this run, if it has `size` bytes. Such a
    /// file was verified or put in this run and is never rewritten, so it can be served again.
    public func existing(_ outputID: SHA256Digest, size: Int64) -> String? {
        for area in [memory, disk] {
            guard let path = area?.path(for: outputID) else { continue }
            if (try? FileSystem.status(of: path, followLinks: false))?.size == size { return path }
        }
        return nil
    }

    /// Where `outputID` goes on the store's filesystem (for a body already there, to be renamed).
    public func diskPath(for outputID: SHA256Digest) -> String {
        disk.path(for: outputID)
    }

    /// Creates the file for `outputID` (`size` bytes) through `write`, which must write it
    /// atomically at the path it is given. In memory if the budget allows; if that fails for a
    /// system reason (the memory filesystem is full, say), on disk. Errors of other kinds (such
    /// as damage found while writing) are thrown as they are. Returns the path written.
    public func create(_ outputID: SHA256Digest, size: Int64, _ write: (String) throws -> Void) throws -> String {
        let pages = (size + 4095) / 4096 * 4096  // what the file takes in memory
        if let memory, memoryUsed.add(pages) <= memoryBudget {
            let path = memory.path(for: outputID)
            do {
                try write(path)
                return path
            } catch is SystemError {
                memoryUsed.add(-pages)
            }
        } else if memory != nil {
            memoryUsed.add(-pages)
        }
        let path = disk.path(for: outputID)
        try write(path)
        return path
    }

    /// Removes this process's directories (after `close`).
    public func removeAll() {
        memory?.removeAll()
        disk.removeAll()
    }

    /// Marks both directories as kept on purpose (see `LiveArea.markKept`).
    public func markKept() {
        memory?.markKept()
        disk.markKept()
    }

    /// How long files kept after a bare end of input (`go list -export`) stay in memory at most:
    /// the tools that read printed paths do so right away, and memory is dearer than disk.
    public static let memoryRetention: Int64 = 600_000_000_000

    /// Sweeps both roots of directories left by processes gone for longer than `retention`
    /// (nanoseconds; in memory, at most `memoryRetention`), sparing this process's own.
    public func sweep(retention: Int64) {
        LiveArea.sweep(root: disk.root, retention: retention, except: disk.directory)
        if let memory { LiveArea.sweep(root: memory.root, retention: min(retention, Self.memoryRetention), except: memory.directory) }
    }

    /// This user's private directory for live files on the memory filesystem at `shared`
    /// (`/dev/shm`), created if needed; nil if `shared` is not in memory, or if the directory is
    /// not a plain directory owned by this user and closed to others (someone else may have
    /// planted it, and files handed to the go command must not be theirs to change).
    public static func privateMemoryRoot(in shared: String = "/dev/shm") -> String? {
        guard FileSystem.isInMemory(shared) else { return nil }
        let root = shared + "/chunkcache-\(getuid())"
        _ = try? FileSystem.createDirectory(root, permissions: 0o700)
        guard let info = try? FileSystem.status(of: root, followLinks: false), info.isDirectory,
            info.owner == getuid(), info.mode & 0o077 == 0
        else { return nil }
        return root
    }

    /// A default memory budget: `limit`, but at most a quarter of what the memory filesystem at
    /// `root` has free, so other users of it (and the machine's RAM) keep the rest.
    public static func memoryBudget(limit: Int64, root: String?) -> Int64 {
        guard let root, limit > 0, let available = try? FileSystem.availableSpace(at: root) else { return 0 }
        return min(limit, available / 4)
    }
}
