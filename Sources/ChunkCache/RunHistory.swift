import ChunkStore
import FileIO

#if canImport(Glibc)
import Glibc
#endif

/// One record per serving run, appended to `STORE/runs` when the run ends, for `chunkcache stats
/// --runs`: what each build asked of the store. Bounded: the oldest records are dropped past
/// `RunHistory.limit`. The file is in the store, so it counts in its size (about 80 bytes a run).
public struct RunRecord: Sendable, Equatable {
    /// When the run started, how long the go command was served,
    /// and how long the work after it took (recompression, the budget).
    public var start: Timestamp
    public var served: Duration
    public var after: Duration
    public var hits: Int64
    public var misses: Int64
    public var puts: Int64
    public var bytesServed: Int64
    public var bytesStored: Int64
    public var errors: Int64
    /// The go command's version ("go1.27.3"), if known, and chunkcache's.
    public var goVersion: String
    public var version: String

    public init(
        start: Timestamp, served: Duration, after: Duration, hits: Int64, misses: Int64, puts: Int64, bytesServed: Int64, bytesStored: Int64,
        errors: Int64, goVersion: String, version: String
    ) {
        self.start = start
        self.served = served
        self.after = after
        self.hits = hits
        self.misses = misses
        self.puts = puts
        self.bytesServed = bytesServed
        self.bytesStored = bytesStored
        self.errors = errors
        self.goVersion = goVersion
        self.version = version
    }

    /// One line: fields separated by spaces (the two names have theirs made "_"), durations in
    /// milliseconds.
    var line: String {
        func token(_ text: String) -> String { text.isEmpty ? "-" : String(text.map { $0 == " " || $0 == "\n" ? "_" : $0 }) }
        let fields: [String] = [
            "\(start.nanosecondsSinceEpoch)", "\(served.wholeMilliseconds)", "\(after.wholeMilliseconds)", "\(hits)", "\(misses)", "\(puts)", "\(bytesServed)",
            "\(bytesStored)", "\(errors)", token(goVersion), token(version),
        ]
        return fields.joined(separator: " ") + "\n"
    }

    init?(line: Substring) {
        let fields = line.split(separator: " ")
        guard fields.count == 11 else { return nil }
        let numbers = fields[0..<9].compactMap { Int64($0) }
        guard numbers.count == 9 else { return nil }
        self.init(
            start: Timestamp(nanosecondsSinceEpoch: numbers[0]), served: .milliseconds(numbers[1]), after: .milliseconds(numbers[2]), hits: numbers[3], misses: numbers[4],
            puts: numbers[5], bytesServed: numbers[6], bytesStored: numbers[7], errors: numbers[8],
            goVersion: fields[9] == "-" ? "" : String(fields[9]), version: fields[10] == "-" ? "" : String(fields[10]))
    }
}

/// The runs file of a store.
public struct RunHistory: Sendable {
    public let path: String
    /// Records kept; the file is cut back to this many once it holds twice as many.
    public let limit: Int

    public init(store: ChunkStore, limit: Int = 1000) {
        path = store.directory + "/runs"
        self.limit = limit
    }

    /// Appends `record` (one write with O_APPEND, so concurrent runs never interleave), then cuts
    /// the file back if it has grown past twice the limit (atomically, under the store's lock).
    public func append(_ record: RunRecord) throws {
        let descriptor = try FileDescriptor.open(path, [.writeOnly, .create, .append, .noFollow], permissions: 0o600)
        try descriptor.closeAfter { try descriptor.writeAll(Array(record.line.utf8)) }
        // A record takes 40 bytes or more: only a file that large can hold twice the limit.
        guard let size = try? FileSystem.status(of: path).size, size > Int64(limit * 2 * 40) else { return }
        let lock = try FileDescriptor.open(FileSystem.parentDirectory(of: path) + "/VERSION", [.readOnly, .noFollow])
        try lock.closeAfter {
            _ = try lock.lock(exclusive: true)
            let lines = try FileSystem.readFile(path).split(separator: UInt8(ascii: "\n"))
            guard lines.count > 2 * limit else { return }
            let kept = lines.suffix(limit).flatMap { $0 + [UInt8(ascii: "\n")] }
            try FileSystem.writeFileAtomically(path, kept, permissions: 0o600)
        }
    }

    /// The last `count` runs to start, oldest first (unreadable lines skipped). Records are
    /// appended as runs end, and a run's work after the go command can outlast the next run.
    public func last(_ count: Int) -> [RunRecord] {
        guard let bytes = try? FileSystem.readFile(path) else { return [] }
        let records = String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap(RunRecord.init(line:))
        return Array(records.sorted { $0.start < $1.start }.suffix(count))
    }
}

/// The version of the go command that started this process, if it can be told cheaply: the
/// `VERSION` file of the GOROOT its executable is in (the parent is gone by the end of the run,
/// so this is read at the start).
func parentGoVersion() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/\(getppid())/exe", &buffer, buffer.count - 1)
    guard count > 0 else { return "" }
    let executable = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard executable.hasSuffix("/bin/go") else { return "" }
    let root = FileSystem.parentDirectory(of: FileSystem.parentDirectory(of: executable))
    guard let version = try? FileSystem.readFile(root + "/VERSION"),
        let first = String(decoding: version, as: UTF8.self).split(separator: "\n").first, first.hasPrefix("go"), !first.contains(" ")
    else { return "" }
    return String(first)
}
