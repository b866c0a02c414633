import FileIO

/// Counts of what happened to a store, kept per process and added to the store's `stats` file
/// (under a lock, so concurrent processes do not lose each other's counts) by `flush(adding:)`.
/// The store counts what it does itself; its users add counters of their own (by name) to the
/// same file.
public final class StoreCounters: Sendable {
    public let puts = AtomicCounter()
    public let bytesPut = AtomicCounter()
    public let damaged = AtomicCounter()
    public let evictions = AtomicCounter()
    /// When trim last ran here (a time in nanoseconds, not a count: the stats file keeps the latest).
    let lastTrim = AtomicCounter()

    /// The names the stats file gives the store's counters: the one place they are spelled.
    enum Name {
        static let puts = "puts", bytesPut = "bytes_put", damaged = "damaged", evictions = "evictions", lastTrim = "last_trim"
    }

    private let path: String
    private let lockPath: String

    init(path: String, lockPath: String) {
        self.path = path
        self.lockPath = lockPath
    }

    /// The store's own counters, by the names the stats file gives them.
    private var named: [(String, AtomicCounter)] {
        [(Name.puts, puts), (Name.bytesPut, bytesPut), (Name.damaged, damaged), (Name.evictions, evictions)]
    }

    /// The totals in the stats file (without this process's unflushed counts).
    public func persisted() -> [String: Int64] {
        guard let bytes = try? FileSystem.readFile(path) else { return [:] }
        var totals: [String: Int64] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, let value = Int64(fields[1]) { totals[String(fields[0])] = value }
        }
        return totals
    }

    /// The store's own totals across runs (the stats file's and this process's unflushed
    /// counts), and when trim last ran.
    func totals(in persisted: [String: Int64]) -> (puts: Int64, damaged: Int64, evictions: Int64, lastTrim: Timestamp?) {
        func total(_ name: String, _ counter: AtomicCounter) -> Int64 { persisted[name, default: 0] + counter.current }
        let last = max(persisted[Name.lastTrim, default: 0], lastTrim.current)
        return (total(Name.puts, puts), total(Name.damaged, damaged), total(Name.evictions, evictions), last == 0 ? nil : Timestamp(nanosecondsSinceEpoch: last))
    }

    /// When trim last ran on this store, if ever.
    public var lastTrimTime: Timestamp? { totals(in: persisted()).lastTrim }

    /// Adds this process's counts, the store's and `others` (its users' counters, by name), to the
    /// stats file and resets them.
    public func flush(adding others: [(String, AtomicCounter)] = []) throws {
        let lock = try FileDescriptor.open(lockPath, [.readOnly, .noFollow])
        defer { lock.close() }
        _ = try lock.lock(exclusive: true)
        var totals = persisted()
        for (name, counter) in named + others {
            let value = counter.current
            counter.add(-value)
            totals[name, default: 0] += value
        }
        let trimmed = lastTrim.current
        lastTrim.add(-trimmed)
        totals[Name.lastTrim] = max(totals[Name.lastTrim, default: 0], trimmed)
        let text = totals.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)\n" }.joined()
        try FileSystem.writeFileAtomically(path, Array(text.utf8), permissions: 0o600)
    }
}
