#if canImport(Glibc)
import CLinux
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Path operations as thin wrappers over system calls, each throwing `SystemError`.
public enum FileSystem {
    /// Metadata of `path`; with `followLinks: false`, of a link itself.
    public static func status(of path: String, followLinks: Bool = true) throws -> FileStatus {
        var info = stat()
        _ = try retrying(followLinks ? "stat" : "lstat", path: path) { followLinks ? stat(path, &info) : lstat(path, &info) }
        return FileStatus(info)
    }

    /// Metadata of `path`, or nil if it does not exist.
    public static func statusIfExists(of path: String, followLinks: Bool = true) throws -> FileStatus? {
        do {
            return try status(of: path, followLinks: followLinks)
        } catch let error as SystemError where error.isNotFound {
            return nil
        }
    }

    /// True if something exists at `path`.
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Creates a directory; succeeds if it is already there.
    public static func createDirectory(_ path: String, permissions: mode_t = 0o700) throws {
        if mkdir(path, permissions) == 0 { return }
        let code = errno
        if code == EEXIST, (try? status(of: path))?.isDirectory == true { return }
        throw SystemError("mkdir", path: path, code: code)
    }

    /// Creates a directory and any missing parents.
    public static func createDirectories(_ path: String, permissions: mode_t = 0o700) throws {
        if (try? status(of: path))?.isDirectory == true { return }
        let parent = parentDirectory(of: path)
        if parent != path, !parent.isEmpty { try createDirectories(parent, permissions: permissions) }
        try createDirectory(path, permissions: permissions)
    }

    /// Atomically replaces `destination` with `source` (same filesystem).
    public static func rename(_ source: String, to destination: String) throws {
        _ = try retrying("rename", path: destination) { Glibc.rename(source, destination) }
    }

    /// Makes `link` another name for the file at `existing` (a hard link: no data is copied).
    public static func hardLink(_ existing: String, as link: String) throws {
        _ = try retrying("link", path: link) { Glibc.link(existing, link) }
    }

    /// Removes a file or an empty directory; succeeds if it is already gone.
    public static func remove(_ path: String) throws {
        if unlink(path) == 0 || errno == ENOENT { return }
        if errno == EISDIR || errno == EPERM, rmdir(path) == 0 { return }
        throw SystemError("unlink", path: path)
    }

    /// Removes `path` and everything below it, never following symbolic links.
    public static func removeTree(_ path: String) throws {
        guard let info = try statusIfExists(of: path, followLinks: false) else { return }
        if info.isDirectory {
            for name in try contentsOfDirectory(path) { try removeTree(path + "/" + name) }
            if rmdir(path) != 0, errno != ENOENT { throw SystemError("rmdir", path: path) }
        } else {
            try remove(path)
        }
    }

    /// Names in a directory, without "." and "..".
    public static func contentsOfDirectory(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else { throw SystemError("opendir", path: path) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    /// Changes permission bits.
    public static func setPermissions(_ path: String, _ permissions: mode_t) throws {
        _ = try retrying("chmod", path: path) { chmod(path, permissions) }
    }

    /// Reads a whole file.
    public static func readFile(_ path: String) throws -> [UInt8] {
        let fd = try FileDescriptor.open(path, .readOnly)
        return try fd.closeAfter { () -> [UInt8] in
            let size = Int(try fd.status().size)
            var bytes = [UInt8](repeating: 0, count: size)
            let n = try bytes.withUnsafeMutableBytes { (raw) in try fd.readFully(into: raw, at: 0) }
            bytes.removeLast(size - n)
            return bytes
        }
    }

    /// Writes `bytes` to `path` atomically: a temporary file beside it, then a rename. Readers see
    /// the old file or the whole new one, never part of it. `sync` also flushes it to the disk.
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8], permissions: mode_t = 0o600, sync: Bool = false) throws {
        try createAtomically(path, permissions: permissions) { fd in
            try fd.writeAll(bytes)
            if sync { try fd.sync() }
        }
    }

    /// Creates the file at `path` atomically: `write` fills a new temporary file beside it (never
    /// following a link), which is renamed into place only if `write` returns; otherwise it is
    /// removed and nothing appears at `path`.
    public static func createAtomically(_ path: String, permissions: mode_t = 0o600, _ write: (FileDescriptor) throws -> Void) throws {
        let temporary = temporaryName(beside: path)
        let fd = try FileDescriptor.open(temporary, [.writeOnly, .create, .exclusive, .noFollow], permissions: permissions)
        do {
            try fd.closeAfter { try write(fd) }
            try rename(temporary, to: path)
        } catch {
            try? remove(temporary)
            throw error
        }
    }

    /// A name for a temporary file beside `path`, unique to this process and call.
    public static func temporaryName(beside path: String) -> String {
        let directory = parentDirectory(of: path)
        let name = path[path.index(after: path.lastIndex(of: "/") ?? path.index(before: path.startIndex))...]
        return directory + "/." + name + "." + uniqueSuffix() + ".tmp"
    }

    /// A string unique to this process and call: the process ID, a counter and random bits.
    public static func uniqueSuffix() -> String {
        let count = uniqueCounter.add()
        return "\(getpid())-\(count)-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
    }

    /// The directory part of `path` ("." for a bare name).
    public static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// Space used on disk by `path` and everything below it, as `du` counts (links not followed).
    public static func allocatedSize(of path: String) -> Int64 {
        guard let info = try? status(of: path, followLinks: false) else { return 0 }
        guard info.isDirectory else { return info.allocatedSize }
        var total = info.allocatedSize
        for name in (try? contentsOfDirectory(path)) ?? [] { total += allocatedSize(of: path + "/" + name) }
        return total
    }

    /// The size of the filesystem holding `path` and the space free on it for an unprivileged
    /// user, in bytes.
    public static func space(at path: String) throws -> (total: Int64, available: Int64) {
        var info = statvfs()
        _ = try retrying("statvfs", path: path) { statvfs(path, &info) }
        return (Int64(info.f_blocks) * Int64(info.f_frsize), Int64(info.f_bavail) * Int64(info.f_frsize))
    }

    /// Space free for an unprivileged user on the filesystem holding `path`, in bytes.
    public static func availableSpace(at path: String) throws -> Int64 {
        try space(at: path).available
    }

    /// True if `path` is on a filesystem kept in memory (tmpfs or ramfs), where files cost no
    /// disk writes and creating many is cheap.
    public static func isInMemory(_ path: String) -> Bool {
        #if os(Linux)
        var info = statfs()
        guard statfs(path, &info) == 0 else { return false }
        let type = UInt64(truncatingIfNeeded: info.f_type)
        return type == 0x0102_1994 || type == 0x8584_58f6  // TMPFS_MAGIC, RAMFS_MAGIC
        #else
        return false
        #endif
    }

    /// An absolute form of `path`, against the current directory.
    public static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (cwd == "/" ? "" : cwd) + "/" + path
    }
}

/// A counter shared by the threads of this process.
private let uniqueCounter = AtomicCounter()
