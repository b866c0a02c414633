import CacheProg
import ChunkStore
import Digests
import FileIO
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The GOCACHEPROG backend over a `ChunkStore`: puts are chunked, compressed and deduplicated;
/// gets reassemble the output into a plain file in this process's live directory.
///
/// Serving is this layer's job; the store below is the storage engine only. A get goes
/// `get` → `LiveOutputs.file` (made once per run, by whoever needs it first: a get, a put, the
/// prefetcher) → `LiveFiles.create` (which file, in memory or on disk) →
/// `FileSystem.createAtomically` → `ChunkStore.write(_:to:)` (the store decodes into the file
/// descriptor it is given), and back up. The `Prefetcher` makes ahead the files a build asked for
/// last time, in the order it asked (`RecordedOrders`), so that a warm build's gets find them made. A damaged entry (bad manifest, missing or corrupt chunk, output not matching its ID) is
/// dealt with here, in one place (`setAside`): answered as a miss, so the go command rebuilds it,
/// never served. Requests that may wait for a lock run on the store's threads (`executor(for:)`).
public final class ChunkCacheHandler: CacheHandler {
    /// Limits applied when a run ends.
    public struct Budget: Sendable {
        /// Bytes on disk (live files excluded) above which least recently used outputs are evicted
        /// down to 90 %; nil for no limit.
        public var maxSize: Int64?
        /// Outputs unused this long are dropped; nil to keep them.
        public var maxAge: Duration?

        /// Bytes of decompressed outputs to keep between runs for faster warm builds; 0 for none.
        public var keepDecompressed: Int64
        /// Keep them in memory, beside the live files, rather than in the store: no disk, but
        /// memory that stays taken between runs (up to `keepDecompressed`).
        public var keepInMemory: Bool
        /// Bytes of live files this process may keep in memory (tmpfs) rather than on disk during
        /// a run; 0 for none. Not used when outputs are kept decompressed in the store (kept
        /// files are hard links, which must be on the store's filesystem).
        public var liveInMemory: Int64
        /// zstd level at which the chunks a run stored are recompressed once the go command has
        /// moved on; nil for none (see `ChunkStore.recompressPendingChunks`).
        public var recompressLevel: Int32?
        /// CPU time that recompression may take after a run, as a multiple of the run's own wall
        /// time (at least `minimumBackgroundCPU`); what is left waits for a later run.
        public var backgroundCPUShare: Double

        /// However short the run, recompression may use this much CPU time after it, so that the
        /// backlog of a long cold build shrinks over the short builds that follow it.
        public static let minimumBackgroundCPU = Duration.seconds(2)

        public init(
            maxSize: Int64? = 10 << 30, maxAge: Duration? = .seconds(5 * 86_400), keepDecompressed: Int64 = 0, keepInMemory: Bool = false,
            liveInMemory: Int64 = 0, recompressLevel: Int32? = nil, backgroundCPUShare: Double = 1
        ) {
            self.maxSize = maxSize
            self.maxAge = maxAge
            self.keepDecompressed = keepDecompressed
            self.keepInMemory = keepInMemory
            self.liveInMemory = liveInMemory
            self.recompressLevel = recompressLevel
            self.backgroundCPUShare = backgroundCPUShare
        }

        /// The CPU time recompression may take after a run that lasted `run`.
        public func backgroundCPU(after run: Duration) -> Duration {
            max(Self.minimumBackgroundCPU, run * backgroundCPUShare)
        }
    }

    public let store: ChunkStore
    public let live: LiveFiles
    /// The live files made in this run, or being made.
    public let outputs = LiveOutputs()
    /// The order of this run's gets and puts, recorded at `close` (or when input ends without
    /// one) for the next run to prefetch by.
    private let order = RequestOrder.Recorder()
    private let orderRecorded = Atomic<Bool>(false)
    private let orders: RecordedOrders
    private let context: UInt64
    /// Makes ahead what this build asked for last time; nil when prefetch is off or the store
    /// has no recorded order.
    public let prefetcher: Prefetcher?
    /// What this run counted (added to the store's stats file when it ends).
    public let counters = CacheCounters()
    /// The shared second tier, if configured.
    public let remote: RemoteTier?
    private let remoteOutputs: RemoteOutputs?
    /// Fetches from the remote what the last run in this context asked for, wherever it ran;
    /// nil without a remote or with prefetch off.
    private let remotePrefetcher: RemotePrefetcher<RemoteOutputs.Fetched>?
    /// Outputs uploading at once: each mostly waits for its three round trips (chunks asked for
    /// and sent, the entry), so more in flight keeps a cold build's uploads from trailing it.
    private let uploads = UploadQueue(limit: 16)
    public let budget: Budget
    /// Decompressed outputs kept between runs, if the budget allows any.
    public let kept: KeptOutputs?
    private let used = Mutex<Set<SHA256Digest>>([])
    /// When this run started: background work after it is bounded by its length.
    private let started = ContinuousClock.now
    private let startedAt = Timestamp.now
    /// A full disk is said once per run, then counted.
    private let diskFull: DiskFullReport
    /// Where each run is recorded, with the go command's version and this program's.
    private let history: RunHistory
    private let goVersion = parentGoVersion()
    private let version: String

    /// Opens a handler on `store`, sweeping live directories of processes gone for longer
    /// than `liveRetention`. Live files go to `memoryRoot` (see `LiveFiles.privateMemoryRoot`)
    /// up to `budget.liveInMemory` bytes.
    ///
    /// With a `prefetch` lead, the files the last run in `context` (by default, this process's:
    /// see `RunContext`) asked for are made ahead, at most that far ahead of the go command.
    public init(
        store: ChunkStore, budget: Budget = Budget(), remote: RemoteTier.Configuration? = nil, liveRetention: Duration = .seconds(3600),
        memoryRoot: String? = nil, prefetch: PrefetchPlan.Lead? = ChunkCacheHandler.defaultPrefetchLead, context: UInt64 = RunContext.current(),
        version: String = "", logger: Logger = Logger(label: "chunkcache")
    ) throws {
        self.store = store
        do {
            self.remote = try remote.map { [counters] in try RemoteTier(configuration: $0, counters: counters, logger: logger) }
        } catch {
            // A remote that cannot be used as configured never fails the build: say why, once, and work locally.
            logger.warning("chunkcache: remote cache not used: \(error)")
            self.remote = nil
        }
        self.budget = budget
        self.version = version
        diskFull = DiskFullReport(store: store)
        history = RunHistory(store: store)
        // Kept files are hard-linked to live files, so both must be on one filesystem: the
        // store's, or memory.
        let keptInMemory = budget.keepInMemory && memoryRoot != nil && budget.liveInMemory > 0
        if budget.keepDecompressed > 0, keptInMemory || !store.isReadOnly {
            kept = try KeptOutputs(
                root: keptInMemory ? memoryRoot! + "/" + KeptOutputs.directoryName : store.auxiliaryDirectory(KeptOutputs.directoryName),
                budget: budget.keepDecompressed)
        } else {
            kept = nil
        }
        live = try LiveFiles(
            diskRoot: store.auxiliaryDirectory(LiveFiles.directoryName), memoryRoot: memoryRoot,
            memoryBudget: kept == nil || keptInMemory ? budget.liveInMemory : 0)
        live.sweep(retention: liveRetention)
        orders = RecordedOrders(store: store)
        self.context = context
        let recorded = prefetch == nil ? [] : orders.load()
        if let prefetch, !recorded.isEmpty {
            prefetcher = Prefetcher(plan: PrefetchPlan(orders: recorded, context: context, lead: prefetch), store: store, outputs: outputs) {
                [live, kept, store] manifest in
                try Self.makeLiveFile(manifest, live: live, kept: kept, store: store, threads: 1)
            }
        } else {
            prefetcher = nil
        }
        remoteOutputs = self.remote.map { [store, live, outputs, counters] in
            RemoteOutputs(remote: $0, store: store, live: live, outputs: outputs, counters: counters, logger: logger)
        }
        if let prefetch, let remoteOutputs {
            let remote = remoteOutputs.remote
            remotePrefetcher = RemotePrefetcher(
                context: context, lead: prefetch, parallelism: remote.configuration.parallelism, executor: Self.remotePrefetchThreads,
                order: { await remote.order(context: context) },
                isLocal: { [store] key in (try? store.manifest(for: key)) != nil }, size: { $0.manifest.size },
                fetch: { await remoteOutputs.fetch($0) })
        } else {
            remotePrefetcher = nil
        }
    }

    deinit {
        prefetcher?.stop()
        remotePrefetcher?.stop()
    }

    /// Where remote prefetch decodes and stores what it fetched: threads of its own at low
    /// priority, one per core, so that the gets the go command waits for (on the store's threads)
    /// come first. On the store's threads (sixteen of them), sixteen fetches at once starved the
    /// gets: an empty store's `go build std` from nginx on loopback took 12.1 s, 3.0–4.8 s now.
    static let remotePrefetchThreads = StoreExecutor(maxThreads: Parallel.threads, lowPriority: true)

    /// How far prefetch may run ahead of the go command: far enough that the go command, which asks
    /// for outputs faster than one core makes them, finds most made (a `go build std` asks for
    /// 1,100 outputs, 180 MB); near enough that a wrong guess costs little.
    public static let defaultPrefetchLead = PrefetchPlan.Lead(count: 256, bytes: 128 << 20)

    /// Puts and `close` wait for locks (gc's, SQLite's): they run on the store's own threads.
    /// Gets only read (SQLite readers in WAL mode never wait for writers), and are answered
    /// fastest where the request was read: moving them to the store's threads cost 3–4 % of a
    /// warm build (BENCHMARKS.md). With a remote tier a get may also store, so it moves too.
    public func executor(for command: Command) -> (any TaskExecutor)? {
        command == .get && remote == nil ? nil : store.executor
    }

    /// Where the server spools large bodies when `spoolDirectory(forBodyOf:)` names no place:
    /// the store's filesystem, so they are renamed into the live directory rather than copied.
    public var spoolDirectory: String { store.temporaryDirectory }

    /// Large bodies follow the rule small ones do: in memory (this process's live directory
    /// there) while the live files' memory budget lasts.
    public func spoolDirectory(forBodyOf size: Int64) -> String? {
        live.spoolDirectory(forBodyOf: size)
    }

    public func get(_ actionID: ActionID, context: CacheContext) async throws -> CacheEntry? {
        let key = actionID.digest
        order.add(key)
        let lookedUp = prefetcher?.observe(key)
        remotePrefetcher?.observe(key)
        // Fetched from the remote ahead of this get (or being fetched): handed over.
        let fetchedAhead = await remotePrefetcher?.takeFetched(key)
        if case .some(.some(let fetched)) = fetchedAhead {
            counters.prefetchUsed.add()
            return servedFromRemote(fetched)
        }
        do {
            guard let manifest = try lookedUp ?? store.manifest(for: key) else {
                // Not asked of the remote again if prefetch just did.
                if fetchedAhead == nil, let remoteOutputs {
                    let fetched = if let remotePrefetcher { await remotePrefetcher.fetch(key) } else { await remoteOutputs.fetch(key) }
                    if let fetched { return servedFromRemote(fetched) }
                }
                counters.misses.add()
                return nil
            }
            let (path, prefetched) = try await outputs.file(manifest.outputID) { [live, kept, store] in
                try Self.makeLiveFile(manifest, live: live, kept: kept, store: store)
            }
            if prefetched { counters.prefetchUsed.add() }
            return served(manifest, at: path)
        } catch let damage as StoreError where damage.kind == .damagedEntry {
            setAside(key, because: damage, logger: context.logger)
            counters.misses.add()
            return nil
        }
    }

    /// Makes the live file of `manifest`'s output: linked from the kept outputs, else decoded
    /// from the store (on up to `threads` threads) into a new file. Returns its path.
    private static func makeLiveFile(_ manifest: Manifest, live: LiveFiles, kept: KeptOutputs?, store: ChunkStore, threads: Int = Parallel.threads) throws -> String {
        try live.create(manifest.outputID, size: manifest.size) { path in
            if kept?.link(manifest.outputID, size: manifest.size, to: path) == true { return }
            try FileSystem.createAtomically(path, permissions: 0o644) { try store.write(manifest, to: $0, threads: threads) }
            kept?.keep(path, as: manifest.outputID)
        }
    }

    /// Counts a hit on `manifest`'s output, handed out at `path`, and says so to the go command.
    private func served(_ manifest: Manifest, at path: String) -> CacheEntry {
        counters.hits.add()
        counters.bytesServed.add(manifest.size)
        used.withLock { _ = $0.insert(manifest.key) }
        return CacheEntry(outputID: OutputID(manifest.outputID), size: manifest.size, time: manifest.time, diskPath: path)
    }

    private func servedFromRemote(_ fetched: RemoteOutputs.Fetched) -> CacheEntry {
        counters.remoteHits.add()
        return served(fetched.manifest, at: fetched.path)
    }

    /// The one place damage is dealt with: the entry is set aside in the store (its manifest
    /// quarantined, a damaged chunk forgotten) and said on stderr; the caller answers a miss.
    private func setAside(_ key: SHA256Digest, because damage: StoreError, logger: Logger) {
        logger.warning("damaged entry set aside, served as a miss: \(damage)")
        store.setAside(key, because: damage)
    }

    public func put(_ request: PutRequest, context: CacheContext) async throws -> String {
        let key = request.actionID.digest
        let outputID = request.outputID.digest
        // In the order too: the go command puts some outputs it never asked for (most are empty),
        // and asks for them in the next build.
        order.add(key)
        prefetcher?.forget(key)
        let path: String
        let body: ChunkStore.Body
        switch request.body.storage {
        case .file(let spooled):
            // Spooled where it is to live (memory, or the store's filesystem): renamed, not copied.
            path = try live.adopt(spooled, as: outputID)
            outputs.add(outputID, path: path)
            body = .file(path: path)
        case .bytes(let bytes):
            path = try await outputs.file(outputID) { [live] in
                try live.create(outputID, size: request.body.size) { try FileSystem.writeFileAtomically($0, bytes, permissions: 0o644) }
            }.path
            body = .bytes(bytes)
        }
        kept?.keep(path, as: outputID)
        do {
            let manifest = try store.store(key: key, outputID: outputID, time: .now, body: body)
            if let remote, !remote.configuration.readOnly {
                let chunks: [(digest: SHA256Digest, size: Int)]
                if case .chunks(let list) = manifest.content { chunks = list.map { ($0.digest, Int($0.size)) } } else { chunks = [] }
                let encoded = manifest.encoded()
                await uploads.add { await remote.upload(key: key, manifest: encoded, chunks: chunks, body: path) }
            }
        } catch where store.isReadOnly {
            // Expected: a read-only store serves hits and stores nothing (said once at start).
        } catch {
            // The go command has its file; only the cache entry is lost. Say so and go on.
            counters.errors.add()
            diskFull.warn("could not store output of \(request.actionID.hex.prefix(16))", error, output: true, logger: context.logger)
        }
        return path
    }

    /// Waits (at most `limit`) for uploads to the remote tier to finish; they read the run's
    /// live files, so this comes before those are removed.
    func drainUploads(limit: Duration = .seconds(30)) async {
        guard remote != nil else { return }
        await uploads.drain(limit: limit)
    }

    /// The go command is done. Prefetch stops: nothing more will be asked. The order of this
    /// run's requests is recorded before the reply (a small file), so that the next build, which
    /// may start the moment this go command exits, can follow it; the rest (uploads, removing the
    /// live files, statistics, recompression, the budget) happens in `endRun`, after the go
    /// command has moved on.
    public func close(context: CacheContext) async throws {
        prefetcher?.stop()
        remotePrefetcher?.stop()
        recordOrder(logger: context.logger)
    }

    /// Ends a run, after the protocol stream is closed (the go command is not waiting any more):
    /// drains uploads to the remote tier, removes the live files if the go command sent `close`
    /// (a build is over; after a bare end of input, as `go list` does, printed paths may still be
    /// read, so they stay until swept), saves statistics, recompresses what the run stored (at a
    /// low CPU priority and within `Budget.backgroundCPU`, see `ChunkStore.recompressPendingChunks`)
    /// and applies the budget.
    public func endRun(closed: Bool, logger: Logger) async {
        let served = ContinuousClock.now - started
        var record = RunRecord(
            start: startedAt, served: served, after: .zero, hits: counters.hits.current, misses: counters.misses.current,
            puts: store.counters.puts.current, bytesServed: counters.bytesServed.current, bytesStored: store.counters.bytesPut.current,
            errors: counters.errors.current,
            goVersion: goVersion, version: version)
        await drainUploads()
        // The prefetchers write live files: they end before those are removed.
        if let report = await remotePrefetcher?.finish(), report.followed {
            counters.prefetched.add(Int64(report.fetched))
            logger.debug("remote prefetch: \(report.fetched) outputs (\(report.bytes) bytes) fetched ahead; stopped following \(report.divergences) times")
        }
        if let report = prefetcher?.finish() {
            counters.prefetched.add(Int64(report.made))
            logger.debug("prefetch: \(report.made) outputs (\(report.bytes) bytes) made ahead, \(counters.prefetchUsed.current) of them asked for; stopped following \(report.divergences) times")
        }
        if closed { live.removeAll() } else { live.markKept() }
        finish(logger: logger)
        recordOrder(logger: logger)  // input ended without `close`
        if let remote, !remote.configuration.readOnly {
            // For a store elsewhere that has not seen this build: one request, unless unchanged.
            // Before the background work below, for the same reason as the local order.
            let keys = order.digests
            if keys != remotePrefetcher?.order { await remote.record(order: keys, context: context) }
        }
        if let level = budget.recompressLevel, !store.isReadOnly {
            // The run's buffers are free: return their pages before the background work, so
            // the process's peak stays that of the busier of the two.
            Memory.returnFreePages()
            do {
                let limit = budget.backgroundCPU(after: ContinuousClock.now - started)
                let report = try store.recompressPendingChunks(level: level, cpuLimit: limit, lowPriority: true)
                if report.chunks > 0 || report.packsLeft > 0 {
                    logger.debug("""
                        recompressed \(report.chunks) chunks at zstd-\(level): \(report.bytesBefore) → \(report.bytesAfter) bytes; \
                        \(report.packsLeft) packs left\(report.leftToAnotherProcess ? " to another process" : "")
                        """)
                }
            } catch {
                diskFull.warn("could not recompress this run's chunks", error, logger: logger)
            }
        }
        maintain(logger: logger)
        if !store.isReadOnly {
            record.after = ContinuousClock.now - started - served
            do { try history.append(record) } catch { diskFull.warn("could not record the run", error, logger: logger) }
        }
        diskFull.summary(logger: logger)
    }

    /// Saves the order of this run's requests (once per run), for the next run in the same
    /// context to prefetch by.
    func recordOrder(logger: Logger) {
        guard !store.isReadOnly, !orderRecorded.exchange(true, ordering: .relaxed) else { return }
        do { try orders.record(RequestOrder(context: context, time: startedAt, keys: order.keys)) } catch {
            diskFull.warn("could not record the order of this run's requests", error, logger: logger)
        }
    }

    /// Saves this run's counters and last-use times.
    func finish(logger: Logger) {
        guard !store.isReadOnly else { return }
        do {
            try store.recordUse(of: Array(used.withLock { $0 }), at: .now)
            try counters.flush(to: store)
        } catch {
            diskFull.warn("could not save statistics", error, logger: logger)
        }
    }

    /// Applies the budget: expires old outputs and, when over the size limit, evicts the least
    /// recently used.
    func maintain(logger: Logger) {
        guard !store.isReadOnly else { return }
        kept?.trim()
        do {
            let overBudget = budget.maxSize.map { store.diskUsage > $0 } ?? false
            let trimDue = store.counters.lastTrimTime.map { Timestamp.now - $0 > .seconds(86_400) } ?? true
            guard overBudget || trimDue else { return }
            let report = try store.trim(maxSize: budget.maxSize, maxAge: budget.maxAge)
            try counters.flush(to: store)
            logger.info("trimmed: \(report.expired) expired, \(report.evicted) evicted, \(report.bytesBefore) → \(report.bytesAfter) bytes")
        } catch {
            diskFull.warn("could not trim the store", error, logger: logger)
        }
    }
}
