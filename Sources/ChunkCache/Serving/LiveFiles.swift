import Digests
import FileIO
import Synchronization

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
    /// The name of the live directory in the store (an auxiliary directory of the store's) and
    /// in the memory root.
    public static let directoryName = "live"

    /// This process's directory on the store's filesystem; always there.
    public let disk: LiveArea
    /// This process's directory in memory, if one could be had.
    public let memory: LiveArea?
    /// Bytes of files this process may put in memory.
    public let memoryBudget: Int64
    private let memoryUsed = AtomicCounter()
    /// Where files go when the disk is full and `memory` is spent or absent: a put must still be
    /// answered with a file holding its body. Made on first need, in memory.
    private let memoryRoot: String?
    private let overflow = Mutex<LiveArea?>(nil)
    /// Directories kept by earlier runs of this store (see `sweep`), newest first, per area: an
    /// output found there unchanged is linked rather than written again.
    private let earlierKept = Mutex<(memory: [LiveArea.KeptDirectory], disk: [LiveArea.KeptDirectory])>(([], []))

    /// What the directories kept after a bare end of input (`go list -export`) may hold in all,
    /// per root (memory, disk), across this user's processes; the oldest go first past it.
    public let keptLimit: Int64
    public static let defaultKeptLimit: Int64 = 256 << 20

    /// - Parameters:
    ///   - diskRoot: the store's live root.
    ///   - memoryRoot: a private directory on a memory filesystem (see `privateMemoryRoot`), or
    ///     nil; live files go to its `live/`.
    ///   - memoryBudget: at most this many bytes go to memory.
    ///   - keptLimit: see `keptLimit`.
    public init(diskRoot: String, memoryRoot: String?, memoryBudget: Int64, keptLimit: Int64 = defaultKeptLimit) throws {
        self.keptLimit = keptLimit
        self.memoryRoot = memoryRoot
        disk = try LiveArea(root: diskRoot)
        memory = memoryBudget > 0 ? memoryRoot.flatMap { try? LiveArea(root: $0 + "/" + Self.directoryName) } : nil
        self.memoryBudget = memory == nil ? 0 : memoryBudget
    }

    /// This process's directories: in memory, overflow (if made), on disk.
    private var areas: [LiveArea] {
        [memory, overflow.withLock { $0 }, disk].compactMap { $0 }
    }

    /// The area for files the disk has no room for: `memory` past its budget, or a directory of
    /// the memory root made now; nil if there is no memory filesystem.
    private func overflowArea() -> LiveArea? {
        if let memory { return memory }
        guard let memoryRoot else { return nil }
        return overflow.withLock { area in
            if area == nil { area = try? LiveArea(root: memoryRoot + "/" + Self.directoryName) }
            return area
        }
    }

    /// Creates the file for `outputID` (`size` bytes) through `write`, which must write it
    /// atomically at the path it is given. In memory if the budget allows; if that fails for a
    /// system reason (the memory filesystem is full, say), on disk. Errors of other kinds (such
    /// as damage found while writing) are thrown as they are. Returns the path written.
    ///
    /// An unchanged copy of the output in a directory an earlier run kept is linked instead
    /// (same area, no new bytes), so tools that run `go list -export` over and over hold one
    /// copy of each export file, not one per run.
    public func create(_ outputID: SHA256Digest, size: Int64, _ write: (String) throws -> Void) throws -> String {
        let pages = Self.pages(size)
        if let linked = linkEarlierCopy(outputID, size: size) {
            if !linked.hasPrefix(disk.directory + "/") { memoryUsed.add(pages) }
            return linked
        }
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
        do {
            try write(path)
            return path
        } catch let error as SystemError where error.isOutOfSpace {
            // The disk is full: memory past its budget rather than an error the go command
            // would fail on (`go list -export` does).
            guard let area = overflowArea() else { throw error }
            let path = area.path(for: outputID)
            try write(path)
            memoryUsed.add(pages)
            return path
        }
    }

    /// What a file of `size` bytes takes in memory: whole pages.
    static func pages(_ size: Int64) -> Int64 { (size + 4095) / 4096 * 4096 }

    /// Links `outputID` from the newest earlier kept directory holding it with `size` bytes and
    /// not modified since that run ended; nil if there is none.
    private func linkEarlierCopy(_ outputID: SHA256Digest, size: Int64) -> String? {
        let (inMemory, onDisk) = earlierKept.withLock { $0 }
        for (area, directories) in [(memory, inMemory), (disk, onDisk)] {
            guard let area else { continue }
            for directory in directories {
                let source = directory.path + "/" + outputID.hex
                guard let info = try? FileSystem.status(of: source, followLinks: false), info.isRegularFile, info.size == size,
                    Timestamp(nanosecondsSinceEpoch: info.modificationTime) <= directory.keptAt
                else { continue }
                let path = area.path(for: outputID)
                if (try? FileSystem.hardLink(source, as: path)) != nil { return path }
            }
        }
        return nil
    }

    /// Where the server should write a body of `size` bytes while it arrives: this process's
    /// directory in memory if the budget allows (it is reserved now), else nil (the store's
    /// filesystem). `adopt` then renames it into place. A body the server drops keeps its
    /// reservation, which errs towards disk.
    public func spoolDirectory(forBodyOf size: Int64) -> String? {
        guard let memory else { return nil }
        let pages = Self.pages(size)
        guard memoryUsed.add(pages) <= memoryBudget else {
            memoryUsed.add(-pages)
            return nil
        }
        return memory.directory
    }

    /// Makes the spooled body at `spooled` the live file of `outputID`, by renaming it within its
    /// filesystem: in memory if it was spooled there (see `spoolDirectory`), else on disk.
    public func adopt(_ spooled: String, as outputID: SHA256Digest) throws -> String {
        let area = areas.first { spooled.hasPrefix($0.directory + "/") } ?? disk
        let path = area.path(for: outputID)
        try FileSystem.rename(spooled, to: path)
        return path
    }

    /// Removes this process's directories (after `close`).
    public func removeAll() {
        for area in areas { area.removeAll() }
    }

    /// Marks this process's directories as kept on purpose (see `LiveArea.markKept`), then removes the
    /// oldest other kept directories past `keptLimit`.
    public func markKept() {
        for area in areas {
            area.markKept(owner: disk.root)
            LiveArea.bound(root: area.root, limit: keptLimit, own: area.directory)
        }
    }

    /// How long files kept after a bare end of input (`go list -export`) stay in memory at most:
    /// the tools that read printed paths do so right away, and memory is dearer than disk.
    public static let memoryRetention = Duration.seconds(600)

    /// Sweeps both roots of directories left by processes gone for longer than `retention`
    /// (in memory, at most `memoryRetention`), sparing this process's own.
    /// The kept directories of this store's runs that remain are where `create` looks for
    /// earlier copies (the memory root is shared by all of this user's stores).
    public func sweep(retention: Duration) {
        let onDisk = LiveArea.sweep(root: disk.root, retention: retention, except: disk.directory)
        let inMemory = memory.map { LiveArea.sweep(root: $0.root, retention: min(retention, Self.memoryRetention), except: $0.directory) } ?? []
        let mine = disk.root
        earlierKept.withLock { $0 = (inMemory.filter { $0.owner == mine }, onDisk.filter { $0.owner == mine }) }
    }

    /// This user's private directory for live files on the memory filesystem at `shared`
    /// (`/dev/shm`), created if needed; nil if `shared` is not in memory, or if the directory is
    /// not a plain directory owned by this user and closed to others (someone else may have
    /// planted it, and files handed to the go command must not be theirs to change).
    public static func privateMemoryRoot(in shared: String = sharedMemory) -> String? {
        guard FileSystem.isInMemory(shared) else { return nil }
        let root = memoryRootPath(in: shared)
        _ = try? FileSystem.createDirectory(root, permissions: 0o700)
        guard let info = try? FileSystem.status(of: root, followLinks: false), info.isDirectory,
            info.owner == getuid(), info.mode & 0o077 == 0
        else { return nil }
        return root
    }

    /// The memory filesystem where live files go when they may.
    public static let sharedMemory = "/dev/shm"

    /// Where this user's private directory on the memory filesystem `shared` is (it may not
    /// exist); one for all of this user's stores.
    public static func memoryRootPath(in shared: String = sharedMemory) -> String {
        shared + "/chunkcache-\(getuid())"
    }

    /// A default memory budget: `limit`, but at most a quarter of what the memory filesystem at
    /// `root` has free, so other users of it (and the machine's RAM) keep the rest.
    public static func memoryBudget(limit: Int64, root: String?) -> Int64 {
        guard let root, limit > 0, let available = try? FileSystem.availableSpace(at: root) else { return 0 }
        return min(limit, available / 4)
    }
}
