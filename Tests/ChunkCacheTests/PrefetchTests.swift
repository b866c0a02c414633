import CacheProg
import CacheProgTesting
@testable import ChunkCache
import ChunkStore
import Digests
import Dispatch
import FileIO
import Logging
import Synchronization
import TestSupport
import Testing

/// Prefetch: what a run follows, how far ahead it goes, when it stops (`PrefetchPlan`); that each
/// live file is made once, whoever asks first (`LiveOutputs`); and, through the handler, that a
/// warm run finds its outputs made ahead and never a wrong or damaged one.
@Suite("Prefetch")
struct PrefetchTests {
    let temp = "/tmp/prefetch-test-" + FileSystem.uniqueSuffix()

    static let lead = PrefetchPlan.Lead(count: 8, bytes: 1 << 40)
    static let order = RequestOrder(context: 7, time: Timestamp(seconds: 1), keys: Array(1...100))

    /// Hands out every item the lead allows, each completed with `size` bytes.
    func drain(_ plan: inout PrefetchPlan, size: Int64 = 1) -> [Int] {
        var positions: [Int] = []
        while let item = plan.nextItem() {
            positions.append(item.position)
            plan.completed(item, size: size)
        }
        return positions
    }

    @Test("a run in the recorded context is followed from before its first request, never more than the lead ahead of it")
    func followsItsContext() {
        var plan = PrefetchPlan(orders: [Self.order], context: 7, lead: Self.lead)
        #expect(plan.following == 0)
        #expect(drain(&plan) == Array(0...7))  // 8 past the furthest request (none yet: -1)
        plan.observe(1)  // the run asks for position 0
        #expect(drain(&plan) == [8])
        plan.observe(20)  // and jumps ahead: what is behind it is left to the gets
        #expect(drain(&plan) == Array(20...27))
        #expect(plan.cursor == 19)
    }

    @Test("filling gaps (for a remote), what a run jumped over is still handed out, but never what it asked for")
    func fillsGaps() {
        var plan = PrefetchPlan(orders: [Self.order], context: 7, lead: Self.lead, fillsGaps: true)
        #expect(drain(&plan) == Array(0...7))
        plan.observe(1)
        #expect(drain(&plan) == [8])
        plan.observe(20)
        #expect(drain(&plan) == Array(9...18) + Array(20...27))
        #expect(plan.cursor == 19)
        plan.observe(11)  // behind the furthest request: the lead stays where it was
        #expect(drain(&plan).isEmpty)
    }

    @Test("the byte lead holds: made-ahead bytes past the run's furthest request stay under it")
    func byteLead() {
        var plan = PrefetchPlan(orders: [Self.order], context: 7, lead: .init(count: 1000, bytes: 10))
        #expect(drain(&plan, size: 4).count == 3)  // 0, 4, 8 bytes ahead when each was handed out
        #expect(plan.aheadBytes == 12)
        plan.observe(2)  // position 1 asked for: positions 0 and 1 are no longer ahead
        #expect(plan.aheadBytes == 4)
        #expect(drain(&plan, size: 4).count == 2)
    }

    @Test("a run in another context is followed once it has asked for a few outputs in a row of one order")
    func anchorsOnRequests() {
        var plan = PrefetchPlan(orders: [Self.order], context: 99, lead: Self.lead)
        #expect(plan.following == nil && plan.nextItem() == nil)
        for key in [500, 40, 41, 42] as [UInt64] { plan.observe(key) }
        #expect(plan.following == nil)
        plan.observe(44)
        #expect(plan.following == 0 && plan.cursor == 43)
        #expect(plan.nextItem()?.position == 44)
    }

    @Test("a prefetch that diverges stops: once most recent requests are not in the order, nothing more is handed out")
    func divergenceStops() {
        var plan = PrefetchPlan(orders: [Self.order], context: 7, lead: Self.lead)
        for key in 1...20 as ClosedRange<UInt64> { plan.observe(key) }
        _ = drain(&plan)
        for key in 1000...1015 as ClosedRange<UInt64> { plan.observe(key) }  // another build's outputs
        #expect(plan.following == 0)  // half of the last 32 in the order: still following
        for key in 1016...1040 as ClosedRange<UInt64> { plan.observe(key) }
        #expect(plan.following == nil && plan.divergences == 1)
        #expect(plan.nextItem() == nil)
    }

    @Test("after a few divergences the run is left alone")
    func givesUp() {
        var plan = PrefetchPlan(orders: [Self.order], context: 7, lead: Self.lead)
        var other: UInt64 = 1000
        for round in 0..<PrefetchPlan.maxDivergences {
            for key in UInt64(round * 30 + 1)...UInt64(round * 30 + 4) { plan.observe(key) }  // anchors again
            #expect(plan.following == 0)
            for _ in 0..<PrefetchPlan.window {
                plan.observe(other)
                other += 1
            }
        }
        #expect(plan.isOver)
        for key in 91...99 as ClosedRange<UInt64> { plan.observe(key) }
        #expect(plan.following == nil)
    }

    @Test("recorded orders: one per context, the newest kept, at most the limit; a damaged file keeps what precedes the damage")
    func recordedOrders() throws {
        defer { try? FileSystem.removeTree(temp) }
        let store = try ChunkStore(directory: temp)
        let orders = RecordedOrders(store: store, limit: 2)
        try orders.record(RequestOrder(context: 1, time: Timestamp(seconds: 10), keys: [1, 2, 3]))
        try orders.record(RequestOrder(context: 2, time: Timestamp(seconds: 20), keys: [4]))
        try orders.record(RequestOrder(context: 1, time: Timestamp(seconds: 30), keys: [5, 6]))
        #expect(orders.load() == [
            RequestOrder(context: 2, time: Timestamp(seconds: 20), keys: [4]), RequestOrder(context: 1, time: Timestamp(seconds: 30), keys: [5, 6]),
        ])
        try orders.record(RequestOrder(context: 3, time: Timestamp(seconds: 40), keys: [7]))
        #expect(orders.load().map(\.context) == [1, 3])
        var bytes = try FileSystem.readFile(orders.path)
        bytes.removeLast(3)
        try FileSystem.writeFileAtomically(orders.path, bytes)
        #expect(orders.load().map(\.context) == [1])
        try FileSystem.writeFileAtomically(orders.path, Array("not an orders file".utf8))
        #expect(orders.load().isEmpty)
    }

    @Test("a get racing its own prefetch gets the one file the prefetch makes, made once")
    func getWaitsForPrefetch() async throws {
        let outputs = LiveOutputs()
        let id = SHA256.hash([1])
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let makes = AtomicCounter()
        // The prefetch blocks a thread of its own, as the prefetcher's threads do: never one of
        // Swift's cooperative threads (one per core; on Linux the global queue's), which every
        // other test shares.
        let prefetch = Task {
            await onThreadOfItsOwn("prefetch") {
                outputs.makeUnlessPresent(id) {
                    makes.add()
                    started.signal()
                    release.wait()
                    return "/prefetched"
                }
            }
        }
        await onThreadOfItsOwn("waiting for the prefetch") { started.wait() }
        let get = Task {
            try await outputs.file(id) {
                makes.add()
                return "/made by the get"
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        release.signal()
        let (path, prefetched) = try await get.value
        #expect(await prefetch.value)
        #expect(path == "/prefetched" && prefetched)
        #expect(makes.current == 1)
        let again = try await outputs.file(id) { "/again" }
        #expect(again.path == "/prefetched" && !again.prefetched)
    }

    @Test("a prefetch that fails leaves the get to make the file itself")
    func failedPrefetch() async throws {
        struct Damaged: Error {}
        let outputs = LiveOutputs()
        let id = SHA256.hash([2])
        #expect(!outputs.makeUnlessPresent(id) { throw Damaged() })
        let (path, prefetched) = try await outputs.file(id) { "/by the get" }
        #expect(path == "/by the get" && !prefetched)
    }

    // MARK: Through the handler

    func body(_ n: Int) -> [UInt8] { pseudoRandomBytes(20_000 + n * 500, seed: UInt64(n)) }
    func actionID(_ n: Int) -> ActionID { ActionID(SHA256.hash(Array("prefetch action \(n)".utf8))) }

    func handler(prefetch: Bool = true, context: UInt64 = 42) throws -> ChunkCacheHandler {
        try ChunkCacheHandler(
            store: ChunkStore(directory: temp + "/store"), budget: .init(recompressLevel: nil),
            prefetch: prefetch ? .init(count: 8, bytes: 1 << 30) : nil, context: context)
    }

    /// A first run: puts outputs 0..<count and asks for each, so that its order is recorded.
    func firstRun(count: Int) async throws {
        let cache = try handler()
        _ = try await withInProcessServer(cache) { client in
            for n in 0..<count {
                #expect(try await client.get(actionID(n)) == nil)
                _ = try await client.put(actionID(n), body: body(n))
            }
            try await client.close()
        }
        await cache.endRun(closed: true, logger: Logger(label: "test"))
    }

    /// The outputs among 0..<count whose live files `cache` has made.
    func made(_ count: Int, by cache: ChunkCacheHandler) -> [Int] {
        (0..<count).filter { cache.outputs.path(of: SHA256.hash(body($0))) != nil }
    }

    /// Waits (at most 30 s: prefetch runs at low priority, and a loaded machine starves it) until
    /// `cache` has made at least `count` live files among outputs 0..<30.
    func waitForPrefetch(_ count: Int, by cache: ChunkCacheHandler) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while made(30, by: cache).count < count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    }

    @Test("a warm run of the same build finds its outputs made ahead, each holding exactly its body, never further ahead than the lead")
    func warmRunPrefetched() async throws {
        defer { try? FileSystem.removeTree(temp) }
        try await firstRun(count: 30)
        let cache = try handler()
        try await waitForPrefetch(8, by: cache)
        try await Task.sleep(for: .milliseconds(200))
        // Lead 8: the first 8 made, nothing past them while the run has asked for nothing.
        #expect(made(30, by: cache) == Array(0...7))
        let ok = try await withInProcessServer(cache) { client in
            var ok = true
            for n in 0..<30 {
                let entry = try #require(try await client.get(actionID(n)))
                let bytes = try FileSystem.readFile(entry.diskPath)
                ok = ok && bytes == body(n)
            }
            try await client.close()
            return ok
        }.result
        #expect(ok)
        let report = try #require(cache.prefetcher).finish()
        #expect(cache.counters.hits.current == 30)
        #expect(cache.counters.prefetchUsed.current >= 8)
        #expect(report.made >= cache.counters.prefetchUsed.current && report.divergences == 0)
        await cache.endRun(closed: true, logger: Logger(label: "test"))
    }

    @Test("a build started the moment the last one's close is answered follows its order, while the last run's process still has its background work ahead")
    func orderRecordedAtClose() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let first = try handler()
        _ = try await withInProcessServer(first) { client in
            for n in 0..<10 {
                #expect(try await client.get(actionID(n)) == nil)
                _ = try await client.put(actionID(n), body: body(n))
            }
            try await client.close()
        }
        // The first run has not ended (its recompression and trim would come in endRun).
        let next = try handler()
        try await waitForPrefetch(8, by: next)
        #expect(made(10, by: next) == Array(0...7))
        await next.endRun(closed: true, logger: Logger(label: "test"))
        await first.endRun(closed: true, logger: Logger(label: "test"))
        #expect(RecordedOrders(store: first.store).load().count == 1)
    }

    @Test("with prefetch off, or in another context before it asks for anything, nothing is made ahead")
    func nothingAheadUnasked() async throws {
        defer { try? FileSystem.removeTree(temp) }
        try await firstRun(count: 10)
        for cache in [try handler(prefetch: false), try handler(context: 43)] {
            try await Task.sleep(for: .milliseconds(100))
            #expect(made(10, by: cache).isEmpty)
            await cache.endRun(closed: true, logger: Logger(label: "test"))
        }
    }

    @Test("a prefetched output that is damaged is a miss: set aside when asked for, never served")
    func damagedPrefetchIsAMiss() async throws {
        defer { try? FileSystem.removeTree(temp) }
        try await firstRun(count: 4)
        try damagePacks(of: temp + "/store")
        let cache = try handler()
        try await Task.sleep(for: .milliseconds(200))  // prefetch tries, and fails, meanwhile
        let entries = try await withInProcessServer(cache) { client in
            var entries: [CacheProgClient.Entry?] = []
            for n in 0..<4 { entries.append(try await client.get(actionID(n))) }
            try await client.close()
            return entries
        }.result
        #expect(entries.allSatisfy { $0 == nil })
        #expect(cache.counters.misses.current == 4 && cache.counters.prefetchUsed.current == 0)
        #expect(try #require(cache.prefetcher).finish().made == 0)
        await cache.endRun(closed: true, logger: Logger(label: "test"))
        #expect(try (0..<4).allSatisfy { try cache.store.manifest(for: actionID($0).digest) == nil })  // set aside
    }

    @Test("many gets at once while prefetch runs: every get one correct file")
    func concurrentGets() async throws {
        defer { try? FileSystem.removeTree(temp) }
        try await firstRun(count: 40)
        let cache = try handler()
        let wrong = try await withInProcessServer(cache) { client in
            let wrong = try await withThrowingTaskGroup(of: Int.self) { group in
                for n in (0..<40).reversed() {
                    group.addTask {
                        let entry = try await client.get(self.actionID(n))
                        return try entry.map { try FileSystem.readFile($0.diskPath) } == self.body(n) ? 0 : 1
                    }
                }
                return try await group.reduce(0, +)
            }
            try await client.close()
            return wrong
        }.result
        #expect(wrong == 0)
        #expect(cache.counters.hits.current == 40)
        await cache.endRun(closed: true, logger: Logger(label: "test"))
    }
}
