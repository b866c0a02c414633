import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The store's own threads, for the work of its calls, which blocks: reading and writing packs,
/// SQLite (which may wait up to 60 s for another process's lock), `StoreLock` (which waits for
/// gc), decoding an output on several threads.
///
/// The rule: async code makes store calls that may wait (puts, which hold `StoreLock` and commit;
/// maintenance; anything while gc may run) only from a task running on this executor (a task
/// given it as its executor preference, as `CacheServer` does for the requests a handler names
/// it for), never on Swift's cooperative pool, whose few threads (one per core) also read the go
/// command's requests. A task preferring this executor runs all of its synchronous work here: one
/// hand-off per request, not one per store call. Gets (`manifest(for:)`, `write(_:to:)`) only
/// read, never wait for another process (SQLite readers in WAL mode do not wait for writers), and
/// may run where the caller is: on the go command's critical path a hand-off costs more than it
/// saves.
///
/// Threads are started as work arrives, up to `maxThreads`, and then stay (idle ones wait on a
/// semaphore); a job waits only when all are busy.
public final class StoreExecutor: TaskExecutor {
    /// The executor for every store of this process.
    public static let shared = StoreExecutor(maxThreads: 16)

    /// Threads this executor may start: enough that requests blocked on a lock (puts while gc
    /// runs) leave others to serve gets.
    public let maxThreads: Int
    private struct State {
        var jobs: [UnownedJob] = []
        var head = 0
        var threads = 0
        var idle = 0
    }
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)

    /// Whether its threads run at low priority (`StoreThread.lowerPriority`): for background work.
    public let lowPriority: Bool

    public init(maxThreads: Int, lowPriority: Bool = false) {
        precondition(maxThreads > 0)
        self.maxThreads = maxThreads
        self.lowPriority = lowPriority
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        enum Action { case wake, start, none }
        let action = state.withLock { state -> Action in
            state.jobs.append(unowned)
            // An idle thread is claimed for this job (so the next job does not count on it too).
            if state.idle > 0 {
                state.idle -= 1
                return .wake
            }
            guard state.threads < maxThreads else { return .none }  // a busy thread takes it next
            state.threads += 1
            return .start
        }
        switch action {
        case .wake: wake.signal()
        case .start: startThread()
        case .none: break
        }
    }

    /// The next job; nil after counting this thread idle, if there is none.
    private func next() -> UnownedJob? {
        state.withLock { state in
            guard state.head < state.jobs.count else {
                state.idle += 1
                return nil
            }
            let job = state.jobs[state.head]
            state.head += 1
            if state.head == state.jobs.count {
                state.jobs.removeAll(keepingCapacity: true)
                state.head = 0
            }
            return job
        }
    }

    private func work() {
        let executor = asUnownedTaskExecutor()
        while true {
            while let job = next() { job.runSynchronously(on: executor) }
            wake.wait()  // claimed by `enqueue`, which took it off the idle count
        }
    }

    private func startThread() {
        // The thread holds the executor for good (executors are static: they live as long as the process).
        StoreThread.start {
            if self.lowPriority { StoreThread.lowerPriority() }
            self.work()
        }
    }
}

/// Threads of the store's own (not Swift's cooperative pool, not dispatch's), for work that
/// blocks or runs long: `StoreExecutor`'s, and background work of the layers above.
public enum StoreThread {
    /// Starts a detached thread running `body`.
    public static func start(_ body: @escaping @Sendable () -> Void) {
        final class Box: Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { context in
            Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context)
        precondition(status == 0, "cannot start a store thread: error \(status)")
        pthread_detach(thread)
    }

    /// Background work: the go command comes first. On Linux, nice is per thread, so each thread
    /// doing such work lowers its own (for good: use it on threads of that work only).
    public static func lowerPriority() {
        setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
    }
}

extension ChunkStore {
    /// Where this store's calls run in async code (see `StoreExecutor`).
    public var executor: StoreExecutor { .shared }
}
