import ChunkStore
import FileIO

/// What serving counts, beside the store's own counters (`StoreCounters`), and added to the same
/// stats file when a run ends: hits and misses, bytes handed to the go command, errors, and the
/// remote tier's traffic.
public final class CacheCounters: Sendable {
    public let hits = AtomicCounter()
    public let misses = AtomicCounter()
    /// Bytes of outputs handed to the go command on hits.
    public let bytesServed = AtomicCounter()
    /// Outputs the go command put that could not be stored.
    public let errors = AtomicCounter()
    /// The shared remote tier: outputs fetched from it, its failures, bytes each way.
    public let remoteHits = AtomicCounter()
    public let remoteErrors = AtomicCounter()
    public let remoteBytesDownloaded = AtomicCounter()
    public let remoteBytesUploaded = AtomicCounter()
    /// Outputs made ahead of the go command, and gets that found theirs so.
    public let prefetched = AtomicCounter()
    public let prefetchUsed = AtomicCounter()

    public init() {}

    /// The names the stats file gives the counters: the one place they are spelled.
    enum Name {
        static let hits = "hits", misses = "misses", bytesServed = "bytes_served", errors = "errors"
        static let remoteHits = "remote_hits", remoteErrors = "remote_errors"
        static let remoteBytesDownloaded = "remote_bytes_down", remoteBytesUploaded = "remote_bytes_up"
        static let prefetched = "prefetched", prefetchUsed = "prefetch_used"
    }

    /// Every counter with its name.
    var named: [(String, AtomicCounter)] {
        [(Name.hits, hits), (Name.misses, misses), (Name.bytesServed, bytesServed), (Name.errors, errors), (Name.remoteHits, remoteHits),
         (Name.remoteErrors, remoteErrors), (Name.remoteBytesDownloaded, remoteBytesDownloaded), (Name.remoteBytesUploaded, remoteBytesUploaded),
         (Name.prefetched, prefetched), (Name.prefetchUsed, prefetchUsed)]
    }

    /// Adds these counts and the store's to `store`'s stats file, and resets them.
    public func flush(to store: ChunkStore) throws {
        try store.counters.flush(adding: named)
    }
}

/// What `chunkcache stats` reports: the store's statistics, and what serving counted across runs
/// and keeps beside the store.
public struct CacheStatistics: Sendable {
    public var store: StoreStatistics
    /// Files handed out (on the store's disk) and decompressed outputs kept between runs.
    public var liveBytes: Int64 = 0
    public var keptBytes: Int64 = 0
    public var hits: Int64 = 0
    public var misses: Int64 = 0
    /// The remote tier, across runs: outputs fetched, failures, bytes downloaded and uploaded.
    public var remoteHits: Int64 = 0
    public var remoteErrors: Int64 = 0
    public var remoteBytesDownloaded: Int64 = 0
    public var remoteBytesUploaded: Int64 = 0
    /// Outputs made ahead of the go command, across runs, and how many of them a get was handed.
    public var prefetched: Int64 = 0
    public var prefetchUsed: Int64 = 0

    /// Gathers the statistics of `store`.
    public init(of store: ChunkStore) {
        self.store = store.statistics()
        liveBytes = FileSystem.allocatedSize(of: store.auxiliaryPath(LiveFiles.directoryName))
        keptBytes = FileSystem.allocatedSize(of: store.auxiliaryPath(KeptOutputs.directoryName))
        let persisted = store.counters.persisted()
        func total(_ name: String) -> Int64 { persisted[name, default: 0] }
        typealias Name = CacheCounters.Name
        (hits, misses) = (total(Name.hits), total(Name.misses))
        (remoteHits, remoteErrors) = (total(Name.remoteHits), total(Name.remoteErrors))
        (remoteBytesDownloaded, remoteBytesUploaded) = (total(Name.remoteBytesDownloaded), total(Name.remoteBytesUploaded))
        (prefetched, prefetchUsed) = (total(Name.prefetched), total(Name.prefetchUsed))
    }
}
