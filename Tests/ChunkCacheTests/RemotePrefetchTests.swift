import ChunkCache
import Digests
import FileIO
import Synchronization
import Testing

/// Remote prefetch (`RemotePrefetcher`) against a remote made of closures: an empty store follows
/// the order the remote keeps, fetches each output once whoever asks first, stays within its lead,
/// skips what the store has, and stops when the gets stop matching.
@Suite("Remote prefetch")
struct RemotePrefetchTests {
    static let keys = (0..<100).map { SHA256.hash([UInt8($0)]) }
    static let lead = PrefetchPlan.Lead(count: 8, bytes: 1 << 40)

    /// A fake remote: an order, and outputs of 1,000 bytes each (nil for the keys in `missing`),
    /// counting fetches per key.
    final class Remote: Sendable {
        let order: [SHA256Digest]?
        let missing: Set<SHA256Digest>
        let fetches = Mutex<[SHA256Digest: Int]>([:])
        init(order: [SHA256Digest]? = RemotePrefetchTests.keys, missing: Set<SHA256Digest> = []) {
            self.order = order
            self.missing = missing
        }
        func fetch(_ key: SHA256Digest) async -> Int64? {
            fetches.withLock { $0[key, default: 0] += 1 }
            try? await Task.sleep(for: .milliseconds(1))
            return missing.contains(key) ? nil : 1000
        }
        var fetched: Int { fetches.withLock { $0.count } }
        var fetchedTwice: Int { fetches.withLock { $0.values.count { $0 > 1 } } }
    }

    func prefetcher(_ remote: Remote, lead: PrefetchPlan.Lead = lead, local: Set<SHA256Digest> = []) -> RemotePrefetcher<Int64> {
        RemotePrefetcher(
            context: 7, lead: lead, parallelism: 4, order: { remote.order }, isLocal: { local.contains($0) }, size: { $0 },
            fetch: { await remote.fetch($0) })
    }

    /// Waits (up to 5 s) until `condition` holds, then a little longer, so that work that should
    /// not happen has had time to.
    func settle(_ condition: () -> Bool) async throws {
        for _ in 0..<500 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(50))
    }

    @Test("an empty store follows the remote's order: every output fetched once, whether its get or prefetch asks first")
    func eachOutputOnce() async throws {
        let remote = Remote()
        let prefetcher = prefetcher(remote)
        for key in Self.keys {
            prefetcher.observe(key)
            let fetched: Int64? = if let ahead = await prefetcher.takeFetched(key) { ahead } else { await prefetcher.fetch(key) }
            #expect(fetched == 1000)
        }
        let report = await prefetcher.finish()
        #expect(report.followed && report.fetched > 0)
        #expect(remote.fetched == 100)
        #expect(remote.fetchedTwice == 0)
        #expect(prefetcher.order == Self.keys)
    }

    @Test("it never runs more than the lead ahead of the gets")
    func leadHolds() async throws {
        let remote = Remote()
        let prefetcher = prefetcher(remote)
        try await settle { remote.fetched >= 8 }
        #expect(remote.fetched == 8)  // positions 0 to 7, with no get yet
        for key in Self.keys.prefix(10) {
            prefetcher.observe(key)
            if await prefetcher.takeFetched(key) == nil { _ = await prefetcher.fetch(key) }  // as a get does
        }
        try await settle { remote.fetched >= 18 }
        #expect(remote.fetched == 18)  // 8 past the tenth get
        #expect(remote.fetchedTwice == 0)
        _ = await prefetcher.finish()
    }

    @Test("outputs the store has are not fetched")
    func skipsLocal() async throws {
        let remote = Remote()
        let local = Set(Self.keys.prefix(50))
        let prefetcher = prefetcher(remote, lead: .init(count: 1000, bytes: 1 << 40), local: local)
        try await settle { remote.fetched >= 50 }
        _ = await prefetcher.finish()
        #expect(remote.fetched == 50)
        #expect(remote.fetches.withLock { $0.keys.allSatisfy { !local.contains($0) } })
    }

    @Test("an output prefetch found missing is handed to its get as missing, not asked for again")
    func missingOnce() async throws {
        let remote = Remote(missing: [Self.keys[0]])
        let prefetcher = prefetcher(remote)
        try await settle { remote.fetched >= 8 }
        prefetcher.observe(Self.keys[0])
        let taken = await prefetcher.takeFetched(Self.keys[0])
        #expect(taken != nil && taken! == nil)
        _ = await prefetcher.finish()
        #expect(remote.fetches.withLock { $0[Self.keys[0]] } == 1)
    }

    @Test("without an order in the remote nothing is fetched ahead; gets fetch on their own")
    func noOrder() async throws {
        let remote = Remote(order: nil)
        let prefetcher = prefetcher(remote)
        try await settle { false }
        #expect(remote.fetched == 0)
        prefetcher.observe(Self.keys[3])
        #expect(await prefetcher.takeFetched(Self.keys[3]) == nil)
        #expect(await prefetcher.fetch(Self.keys[3]) == 1000)
        let report = await prefetcher.finish()
        #expect(!report.followed && remote.fetched == 1)
    }

    @Test("a run whose gets stop matching the order stops being followed: nothing more is fetched")
    func divergenceStops() async throws {
        let remote = Remote()
        let prefetcher = prefetcher(remote)
        try await settle { remote.fetched >= 8 }
        for byte in 0..<40 { prefetcher.observe(SHA256.hash([UInt8(byte), 1])) }  // another build's outputs
        prefetcher.observe(Self.keys[20])  // a key far ahead, after the run stopped following
        try await settle { false }
        let report = await prefetcher.finish()
        #expect(report.divergences == 1)
        #expect(remote.fetched == 8)
    }
}
