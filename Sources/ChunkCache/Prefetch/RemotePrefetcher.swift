import ChunkStore
import Digests
import FileIO
import Synchronization

/// Fetches from the remote tier, ahead of the go command, what the last run in this context
/// asked for (anywhere: its order is kept in the remote, `RemoteTier.record(order:context:)`),
/// so that a store that has never seen the build, such as a fresh CI machine's, is served at the
/// remote's bandwidth rather than at a round trip or two per get: the go command asks for about
/// as many outputs at a time as there are cores, prefetch for `parallelism`.
///
/// Each output is fetched once: a get for an output being fetched waits for that fetch
/// (`fetch(_:)`), and one that was fetched ahead is handed what was fetched. What to fetch, how
/// far ahead (`PrefetchPlan.Lead`, counted from the go command's furthest get) and when to stop
/// following (the gets stop matching) is `PrefetchPlan`'s, as for local prefetch. Outputs the
/// store has already are skipped. The work itself (`fetch` in `init`) is the get's: the same
/// checks, so a wrong or hostile order costs fetches, never a wrong output.
public final class RemotePrefetcher<Fetched: Sendable>: Sendable {
    /// What remote prefetch did in a run.
    public struct Report: Sendable, Equatable {
        /// Whether an order was found for this run's context.
        public var followed: Bool
        /// Outputs fetched ahead (whether or not a get then asked), and their bytes.
        public var fetched: Int
        public var bytes: Int64
        public var divergences: Int
    }

    private struct State {
        var plan: PrefetchPlan?
        var order: [SHA256Digest]?
        var digests: [UInt64: SHA256Digest] = [:]
        /// Gets noted before the order arrived, to be replayed into the plan.
        var early: [UInt64] = []
        /// Fetches started, by key: in flight or done, until a get takes them.
        var fetches: [SHA256Digest: Task<Fetched?, Never>] = [:]
        var stopped = false
        /// The driver, waiting for a get to move the run on.
        var waiting: CheckedContinuation<Void, Never>?
        var fetched = 0
        var bytes: Int64 = 0
    }
    private let state = Mutex(State())
    private let fetchWork: @Sendable (SHA256Digest) async -> Fetched?
    private let executor: (any TaskExecutor)?
    private let driver = Mutex<Task<Void, Never>?>(nil)

    /// Starts: asks `order` for the keys the last run in `context` asked for, then fetches them
    /// with `fetch`, at most `parallelism` at a time and `lead` ahead of the gets, skipping keys
    /// `isLocal` says the store has.
    /// - Parameters:
    ///   - size: the bytes of a fetched output (for the lead's byte bound).
    ///   - executor: where the driver and the fetches run (look-ups, decoding and writing block).
    public init(
        context: UInt64, lead: PrefetchPlan.Lead, parallelism: Int, executor: (any TaskExecutor)? = nil,
        order: @escaping @Sendable () async -> [SHA256Digest]?, isLocal: @escaping @Sendable (SHA256Digest) -> Bool,
        size: @escaping @Sendable (Fetched) -> Int64, fetch: @escaping @Sendable (SHA256Digest) async -> Fetched?
    ) {
        fetchWork = fetch
        self.executor = executor
        let task = Task(executorPreference: executor) { [self] in
            await run(context: context, lead: lead, parallelism: max(1, parallelism), order: order, isLocal: isLocal, size: size)
        }
        driver.withLock { $0 = task }
    }

    /// The order followed, as the remote had it (nil until it arrives, or if there is none).
    public var order: [SHA256Digest]? { state.withLock { $0.order } }

    /// Notes a get for `key` (before it is answered), so that prefetch keeps its lead.
    public func observe(_ key: SHA256Digest) {
        let waiting = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.plan != nil else {
                if state.early.count < RecordedOrders.maxKeys { state.early.append(RequestOrder.prefix(of: key)) }
                return nil
            }
            state.plan!.observe(RequestOrder.prefix(of: key))
            return Self.wakeIfDue(&state)
        }
        waiting?.resume()
    }

    /// What was fetched (or is being fetched) for `key` ahead of this get, waited for and handed
    /// over once; nil (at once) if prefetch did not start on it. `.some(nil)`: it was fetched and
    /// is not in the remote, or did not check out.
    public func takeFetched(_ key: SHA256Digest) async -> Fetched?? {
        guard let task = state.withLock({ $0.fetches.removeValue(forKey: key) }) else { return nil }
        return .some(await task.value)
    }

    /// Fetches `key` for a get: joins a fetch under way, or starts one (which a prefetch of the
    /// same key would then join).
    public func fetch(_ key: SHA256Digest) async -> Fetched? {
        let task = state.withLock { state in
            if let task = state.fetches[key] { return task }
            let task = startFetch(key)
            state.fetches[key] = task
            return task
        }
        defer { state.withLock { _ = $0.fetches.removeValue(forKey: key) } }
        return await task.value
    }

    /// A fetch of `key`, on the executor given at `init` (it decodes and writes a file).
    private func startFetch(_ key: SHA256Digest) -> Task<Fetched?, Never> {
        let work = fetchWork
        return Task(executorPreference: executor) { await work(key) }
    }

    /// Stops prefetching (the go command is done); returns at once.
    public func stop() {
        let waiting = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.stopped = true
            defer { state.waiting = nil }
            return state.waiting
        }
        waiting?.resume()
    }

    /// Stops, then waits for every fetch it started (they write live files) and reports.
    public func finish() async -> Report {
        stop()
        await driver.withLock { $0 }?.value
        let left = state.withLock { state in
            defer { state.fetches.removeAll() }
            return Array(state.fetches.values)
        }
        for task in left { _ = await task.value }
        return state.withLock { Report(followed: $0.plan != nil, fetched: $0.fetched, bytes: $0.bytes, divergences: $0.plan?.divergences ?? 0) }
    }

    /// The continuation to resume if the driver waits and there is something for it to do.
    private static func wakeIfDue(_ state: inout State) -> CheckedContinuation<Void, Never>? {
        guard state.waiting != nil, state.stopped || (state.plan.map { $0.isOver || $0.hasItem } ?? false) else { return nil }
        defer { state.waiting = nil }
        return state.waiting
    }

    private func run(
        context: UInt64, lead: PrefetchPlan.Lead, parallelism: Int, order: @Sendable () async -> [SHA256Digest]?,
        isLocal: @Sendable (SHA256Digest) -> Bool, size: @escaping @Sendable (Fetched) -> Int64
    ) async {
        guard let keys = await order(), !keys.isEmpty, !state.withLock({ $0.stopped }) else { return }
        let recorded = RequestOrder(context: context, time: .now, keys: keys.map(RequestOrder.prefix(of:)))
        state.withLock { state in
            var plan = PrefetchPlan(orders: [recorded], context: context, lead: lead, fillsGaps: true)
            for prefix in state.early { plan.observe(prefix) }
            state.early = []
            for key in keys where state.digests[RequestOrder.prefix(of: key)] == nil { state.digests[RequestOrder.prefix(of: key)] = key }
            state.plan = plan
            state.order = keys
        }
        await withTaskGroup(of: (PrefetchPlan.Item, Int64).self) { group in
            var inFlight = 0
            while true {
                while inFlight < parallelism {
                    guard let (item, key) = nextItem() else { break }
                    if isLocal(key) {
                        completed(item, size: 0)
                        continue
                    }
                    let task = state.withLock { state in
                        if let task = state.fetches[key] { return task }  // a get started it
                        let task = startFetch(key)
                        state.fetches[key] = task
                        return task
                    }
                    group.addTask { (item, await task.value.map(size) ?? -1) }
                    inFlight += 1
                }
                if inFlight > 0, let (item, bytes) = await group.next() {
                    inFlight -= 1
                    completed(item, size: bytes)
                    continue
                }
                // Nothing in flight and the lead used up: wait for a get to move the run on.
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { state -> Bool in
                        guard !state.stopped, let plan = state.plan, !plan.isOver, !plan.hasItem else { return true }
                        state.waiting = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
                let over = state.withLock { $0.stopped || ($0.plan?.isOver ?? true) }
                if over { return }
            }
        }
    }

    private func nextItem() -> (PrefetchPlan.Item, SHA256Digest)? {
        state.withLock { state in
            guard !state.stopped, let item = state.plan?.nextItem(), let key = state.digests[item.key] else { return nil }
            return (item, key)
        }
    }

    /// Notes a finished item: `size` bytes fetched (0 if none were needed, -1 if it failed).
    private func completed(_ item: PrefetchPlan.Item, size: Int64) {
        state.withLock { state in
            if size > 0 {
                state.fetched += 1
                state.bytes += size
            }
            state.plan?.completed(item, size: max(0, size))
        }
    }
}
