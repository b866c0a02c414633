import FileIO

/// Counts of what happened to a store, kept per process and added to the store's `stats` file
/// (under a lock, so concurrent processes do not lose each other's counts) by `flush()`.
public final class StoreCounters: Sendable {
    public let hits = AtomicCounter()
    public let misses = AtomicCounter()
    public let puts = AtomicCounter()
    public let bytesPut = AtomicCounter()
    /// Bytes of outputs handed to the go command on hits.
    public let bytesServed = AtomicCounter()
    public let damaged = AtomicCounter()
    public let errors = AtomicCounter()
    public let evictions = AtomicCounter()
    /// The shared remote tier: outputs fetched from it, its failures, bytes each way.
    public let remoteHits = AtomicCounter()
    public let remoteErrors = AtomicCounter()
    public let remoteBytesDownloaded = AtomicCounter()
    public let remoteBytesUploaded = AtomicCounter()
    /// When trim last ran here (a time, not a count: the stats file keeps the latest).
    public let lastTrim = AtomicCounter()

    private let path: String
    private let lockPath: String

    init(path: String, lockPath: String) {
        self.path = path
        self.lockPath = lockPath
    }

    private var all: [(String, AtomicCounter)] {
        [("hits", hits), ("misses", misses), ("puts", puts), ("bytes_put", bytesPut), ("bytes_served", bytesServed), ("damaged", damaged), ("errors", errors), ("evictions", evictions),
         ("remote_hits", remoteHits), ("remote_errors", remoteErrors), ("remote_bytes_down", remoteBytesDownloaded), ("remote_bytes_up", remoteBytesUploaded)]
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

    /// Adds this process's counts to the stats file and resets them.
    public func flush() throws {
        let lock = try FileDescriptor.open(lockPath, [.readOnly, .noFollow])
        defer { lock.close() }
        _ = try lock.lock(exclusive: true)
        var totals = persisted()
        for (name, counter) in all {
            let value = counter.current
            counter.add(-value)
            totals[name, default: 0] += value
        }
        let trimmed = lastTrim.current
        lastTrim.add(-trimmed)
        totals["last_trim"] = max(totals["last_trim", default: 0], trimmed)
        let text = totals.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)\n" }.joined()
        try FileSystem.writeFileAtomically(path, Array(text.utf8), permissions: 0o600)
    }
}
