import Digests
import FileIO

/// Plain files handed to the go command (DiskPaths), one directory per process.
///
/// The go command reads these files by path during its run, and `go list -export` prints paths
/// that other tools open after it exits. So a process's directory is removed when its go command
/// sends `close` (a build is over), but kept when input just ends (what `go list` does), marked
/// as such; marked directories of processes that are gone are swept once older than the
/// retention time, unmarked ones (their process was killed, so no one holds valid paths into
/// them) a minute after their last change. Each directory holds a lock file, locked for as long
/// as its process lives, so a sweep never touches a directory in use. Files are named by output
/// ID and never rewritten in place.
public final class LiveArea: Sendable {
    /// Where the directories of all processes are.
    public let root: String
    /// This process's directory.
    public let directory: String
    private let lock: FileDescriptor
    static let lockName = ".lock"
    static let keptMarker = ".kept"
    /// How long a killed process's directory stays: long enough that a process still between
    /// creating its directory and locking it is never mistaken for a dead one.
    static let killedRetention = Duration.seconds(60)

    /// Creates a directory of this process's own under `root`.
    public init(root: String) throws {
        try FileSystem.createDirectories(root)
        self.root = root
        directory = root + "/" + FileSystem.uniqueSuffix()
        try FileSystem.createDirectory(directory)
        lock = try FileDescriptor.open(directory + "/" + Self.lockName, [.readWrite, .create, .exclusive, .noFollow], permissions: 0o600)
        _ = try lock.lock(exclusive: true, wait: false)
    }

    deinit { lock.close() }

    /// Where the output with this ID lives in this process's directory.
    public func path(for outputID: SHA256Digest) -> String {
        directory + "/" + outputID.hex
    }

    /// Removes this process's directory (after `close`: no one reads these files any more).
    public func removeAll() {
        try? FileSystem.removeTree(directory)
    }

    /// Marks this process's directory as kept on purpose (input ended without `close`, so printed
    /// paths may still be read): sweeps then wait the full retention time. The marker names
    /// `owner` (the store the files came from).
    public func markKept(owner: String) {
        try? FileSystem.writeFileAtomically(directory + "/" + Self.keptMarker, Array(owner.utf8), permissions: 0o600)
    }

    /// A directory kept on purpose by a process that is gone, when it was marked, and for whom.
    public struct KeptDirectory: Sendable {
        public let path: String
        public let keptAt: Timestamp
        public let owner: String
    }

    /// Removes other processes' directories whose process is gone: kept ones older than
    /// `retention`, those of killed processes older than a minute (or `retention`,
    /// if shorter). Returns the kept directories that remain, newest first.
    @discardableResult
    public static func sweep(root: String, retention: Duration, except own: String? = nil) -> [KeptDirectory] {
        guard let names = try? FileSystem.contentsOfDirectory(root) else { return [] }
        let now = Timestamp.now
        var kept: [KeptDirectory] = []
        for name in names {
            let path = root + "/" + name
            guard path != own, let info = try? FileSystem.status(of: path, followLinks: false), info.isDirectory else { continue }
            let marker = try? FileSystem.status(of: path + "/" + keptMarker, followLinks: false)
            guard now - Timestamp(nanosecondsSinceEpoch: info.modificationTime) > (marker != nil ? retention : min(retention, Self.killedRetention)) else {
                if let marker, let owner = try? FileSystem.readFile(path + "/" + keptMarker) {
                    kept.append(KeptDirectory(path: path, keptAt: Timestamp(nanosecondsSinceEpoch: marker.modificationTime), owner: String(decoding: owner, as: UTF8.self)))
                }
                continue
            }
            guard let descriptor = try? FileDescriptor.open(path + "/" + lockName, [.readOnly, .noFollow]) else {
                // No lock file: a directory whose creation was interrupted.
                try? FileSystem.removeTree(path)
                continue
            }
            defer { descriptor.close() }
            guard (try? descriptor.lock(exclusive: true, wait: false)) == true else { continue }  // alive
            try? FileSystem.removeTree(path)
        }
        return kept.sorted { $0.keptAt > $1.keptAt }
    }

    /// Removes the oldest directories kept by processes that are gone until what all kept
    /// directories under `root` hold (this process's own counted first, never removed; a file
    /// linked into several counted once) is at most `limit` bytes. Returns the bytes freed.
    @discardableResult
    public static func bound(root: String, limit: Int64, own: String?) -> Int64 {
        var counted = Set<UInt64>()
        /// Bytes of `directory`'s files not counted yet, and their inodes.
        func uncounted(in directory: String) -> (bytes: Int64, inodes: [UInt64]) {
            var bytes: Int64 = 0
            var inodes: [UInt64] = []
            for name in (try? FileSystem.contentsOfDirectory(directory)) ?? [] {
                guard let info = try? FileSystem.status(of: directory + "/" + name, followLinks: false), info.isRegularFile,
                    !counted.contains(info.inode)
                else { continue }
                bytes += info.allocatedSize
                inodes.append(info.inode)
            }
            return (bytes, inodes)
        }
        var total: Int64 = 0
        if let own {
            let (bytes, inodes) = uncounted(in: own)
            total = bytes
            counted.formUnion(inodes)
        }
        var freed: Int64 = 0
        for directory in sweep(root: root, retention: .seconds(Int64.max / 2_000_000_000), except: own) {
            let (bytes, inodes) = uncounted(in: directory.path)
            if total + bytes > limit {
                try? FileSystem.removeTree(directory.path)
                freed += bytes
            } else {
                total += bytes
                counted.formUnion(inodes)
            }
        }
        return freed
    }
}
