import ChunkStore
import Digests
import Dispatch
import Synchronization

/// Makes the live files a run is about to ask for, ahead of the go command, on a thread of its
/// own at low priority (the go command and the gets it waits for come first), following a
/// recorded order (`PrefetchPlan` decides what, and when to stop).
///
/// What it makes goes through the same path as a get's file (`make`: the same checks, the same
/// memory budget) and into the same `LiveOutputs`, so a get for an output being prefetched waits
/// for that work, and a get never finds a file it could not have made itself. A damaged entry is
/// left as it is: the get that asks for it meets the damage and answers a miss.
public final class Prefetcher: Sendable {
    /// What prefetch did in a run.
    public struct Report: Sendable, Equatable {
        /// Outputs made ahead, and their bytes.
        public var made: Int
        public var bytes: Int64
        /// How many times the run stopped following an order.
        public var divergences: Int
    }

    private struct State {
        var plan: PrefetchPlan
        var stopped = false
        /// Threads waiting for work.
        var waiting = 0
        var made = 0
        var bytes: Int64 = 0
        /// Manifests looked up ahead, by key, for the get that will ask.
        var manifests: [SHA256Digest: Manifest] = [:]
        /// Keys this run put: a manifest looked up before the put must not be handed out after it.
        var replaced: Set<SHA256Digest> = []
    }
    private let state: Mutex<State>
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let store: ChunkStore
    private let outputs: LiveOutputs
    private let make: @Sendable (Manifest) throws -> String

    /// Starts prefetching on threads of its own (which end at `stop()`, or when the plan is over).
    /// - Parameters:
    ///   - make: makes the live file of a manifest's output, as a get does, decoding on this thread
    ///     only; returns its path.
    ///   - threads: threads making files at once; by default one per core (up to 4): at low
    ///     priority they take only what the go command leaves idle.
    public init(plan: PrefetchPlan, store: ChunkStore, outputs: LiveOutputs, threads: Int = Parallel.threads, make: @escaping @Sendable (Manifest) throws -> String) {
        state = Mutex(State(plan: plan))
        self.store = store
        self.outputs = outputs
        self.make = make
        self.threads = threads
        for _ in 0..<threads {
            StoreThread.start { [self] in
                StoreThread.lowerPriority()
                work()
                finished.signal()
            }
        }
    }
    private let threads: Int

    /// Notes a get for `key` (before it is answered); returns the manifest prefetch looked up for
    /// it, if any, so the get need not look it up again.
    public func observe(_ key: SHA256Digest) -> Manifest? {
        let (manifest, wakes) = state.withLock { state -> (Manifest?, Int) in
            state.plan.observe(RequestOrder.prefix(of: key))
            return (state.manifests.removeValue(forKey: key), Self.wakes(&state))
        }
        for _ in 0..<wakes { wake.signal() }
        return manifest
    }

    /// Forgets what was looked up ahead for `key` (a put replaced its manifest).
    public func forget(_ key: SHA256Digest) {
        state.withLock { state in
            state.manifests[key] = nil
            state.replaced.insert(key)
        }
    }

    /// Stops prefetching (the go command is done); returns at once.
    public func stop() {
        let wakes = state.withLock { state -> Int in
            state.stopped = true
            defer { state.waiting = 0 }
            return state.waiting
        }
        for _ in 0..<wakes { wake.signal() }
    }

    /// Stops, then waits for the thread to end (it finishes the output in hand).
    public func finish() -> Report {
        stop()
        for _ in 0..<threads { finished.wait() }
        for _ in 0..<threads { finished.signal() }  // a second call returns too
        return state.withLock { Report(made: $0.made, bytes: $0.bytes, divergences: $0.plan.divergences) }
    }

    /// Takes items while the plan gives them; waits when the lead is used up, until a get moves
    /// the run on; ends when stopped or when the plan is over.
    private func work() {
        while let item = nextItem() {
            var size: Int64 = 0
            if let manifest = try? store.manifest(forKeyPrefix: item.key) {
                let made = outputs.makeUnlessPresent(manifest.outputID) { try make(manifest) }
                if made { size = manifest.size }
                state.withLock { state in
                    if made {
                        state.made += 1
                        state.bytes += manifest.size
                    }
                    if !state.replaced.contains(manifest.key) { state.manifests[manifest.key] = manifest }
                }
            }
            let wakes = state.withLock { state in
                state.plan.completed(item, size: size)
                return Self.wakes(&state)
            }
            for _ in 0..<wakes { wake.signal() }
        }
    }

    /// How many waiting threads to wake (taken off the count): one when there is work, all when
    /// none will come; none otherwise, so that threads are not woken once per get.
    private static func wakes(_ state: inout State) -> Int {
        let wakes = state.plan.isOver ? state.waiting : state.plan.hasItem ? min(1, state.waiting) : 0
        state.waiting -= wakes
        return wakes
    }

    private func nextItem() -> PrefetchPlan.Item? {
        while true {
            let next = state.withLock { state -> PrefetchPlan.Item?? in
                if state.stopped || state.plan.isOver { return .some(nil) }
                if let item = state.plan.nextItem() { return item }
                state.waiting += 1
                return nil
            }
            if let next { return next }
            wake.wait()
        }
    }
}
