#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open file, as a thin typed wrapper over a POSIX descriptor. It does not close itself:
/// use `closeAfter` or call `close()`.
public struct FileDescriptor: Hashable, Sendable {
    /// The descriptor number.
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The process's standard input, output and error.
    public static let standardInput = FileDescriptor(rawValue: 0)
    public static let standardOutput = FileDescriptor(rawValue: 1)
    public static let standardError = FileDescriptor(rawValue: 2)

    /// How to open a file.
    public struct Options: OptionSet, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let readOnly = Options([])
        public static let writeOnly = Options(rawValue: O_WRONLY)
        public static let readWrite = Options(rawValue: O_RDWR)
        public static let create = Options(rawValue: O_CREAT)
        public static let exclusive = Options(rawValue: O_EXCL)
        public static let truncate = Options(rawValue: O_TRUNC)
        public static let append = Options(rawValue: O_APPEND)
        /// Refuse to follow a symbolic link in the last path component.
        public static let noFollow = Options(rawValue: O_NOFOLLOW)
        public static let directory = Options(rawValue: O_DIRECTORY)
    }

    /// Opens `path`; new files get `permissions` (less the umask). Always close-on-exec.
    public static func open(_ path: String, _ options: Options, permissions: mode_t = 0o644) throws -> FileDescriptor {
        let fd = try retrying("open", path: path) { Glibc.open(path, options.rawValue | O_CLOEXEC, permissions) }
        return FileDescriptor(rawValue: fd)
    }

    /// Closes the descriptor.
    public func close() {
        _ = Glibc.close(rawValue)
    }

    /// Runs `body`, then closes the descriptor whatever happened.
    public func closeAfter<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        defer { close() }
        return try body()
    }

    /// Reads up to `buffer.count` bytes; 0 means end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try retrying("read") { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
    }

    /// Reads up to `buffer.count` bytes at `offset` without moving the file position.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        try retrying("pread") { pread(rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    /// Fills `buffer` from `offset`, stopping early only at end of file; returns the bytes read.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), at: offset + Int64(done))
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes all of `bytes` at the file position.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = try retrying("write") { Glibc.write(rawValue, bytes.baseAddress! + done, bytes.count - done) }
            done += n
        }
    }

    /// Writes all of `bytes` at the file position.
    public func writeAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { (raw) in try writeAll(raw) }
    }

    /// Writes all of `bytes` at `offset` without moving the file position.
    public func writeAll(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        var done = 0
        while done < bytes.count {
            let n = try retrying("pwrite") {
                pwrite(rawValue, bytes.baseAddress! + done, bytes.count - done, off_t(offset + Int64(done)))
            }
            done += n
        }
    }

    /// Flushes the file's data to the disk.
    public func sync() throws {
        _ = try retrying("fsync") { fsync(rawValue) }
    }

    /// The file's metadata.
    public func status() throws -> FileStatus {
        var info = stat()
        _ = try retrying("fstat") { fstat(rawValue, &info) }
        return FileStatus(info)
    }

    /// Takes an advisory lock on the whole file (flock), released when the descriptor closes
    /// or the process dies. Returns false if `wait` is false and another holds it.
    public func lock(exclusive: Bool = true, wait: Bool = true) throws -> Bool {
        let operation = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)
        while flock(rawValue, operation) == -1 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK { return false }
            throw SystemError("flock")
        }
        return true
    }

    /// Releases a lock taken with `lock`.
    public func unlock() { _ = flock(rawValue, LOCK_UN) }
}

/// What `stat` says of a file.
public struct FileStatus: Sendable {
    /// Bytes in the file.
    public let size: Int64
    /// Bytes the file occupies on disk (allocated blocks), what `du` counts.
    public let allocatedSize: Int64
    /// Last modification, in nanoseconds since the epoch.
    public let modificationTime: Int64
    /// Last change of the inode (contents, or metadata such as a new hard link), nanoseconds.
    public let changeTime: Int64
    /// Permission bits and file type.
    public let mode: mode_t
    /// The owner's user ID.
    public let owner: uid_t
    /// The device and inode, which identify the file.
    public let device: UInt64
    public let inode: UInt64

    init(_ info: stat) {
        size = Int64(info.st_size)
        allocatedSize = Int64(info.st_blocks) * 512
        modificationTime = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        changeTime = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
        mode = info.st_mode
        owner = info.st_uid
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }

    /// A regular file.
    public var isRegularFile: Bool { mode & S_IFMT == S_IFREG }
    /// A directory.
    public var isDirectory: Bool { mode & S_IFMT == S_IFDIR }
    /// A symbolic link (only seen by `FileSystem.status(of:followLinks: false)`).
    public var isSymbolicLink: Bool { mode & S_IFMT == S_IFLNK }
}
