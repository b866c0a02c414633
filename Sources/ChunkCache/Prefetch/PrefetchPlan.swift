/// Which recorded order a run follows, and what to prefetch next: the decisions of prefetch,
/// without threads or files (`Prefetcher` does the work), so that they can be tested as they are.
///
/// A run follows an order when it starts in that order's context (the same go command in the
/// same directory: from its first request, or before it), or once `anchorLength` of its gets in a
/// row were found close together in one order. It stops following when more than half of its
/// last `window` gets were not in the order (another build, or a changed tree), and gives up after
/// `maxDivergences` such stops. Prefetch runs at most `lead` ahead of the run's furthest request
/// in the order, in outputs and in bytes.
public struct PrefetchPlan: Sendable {
    public struct Item: Sendable, Equatable {
        /// Which order, and where in it.
        public var order: Int
        public var position: Int
        public var key: UInt64
    }

    public struct Lead: Sendable {
        public var count: Int
        public var bytes: Int64
        public init(count: Int, bytes: Int64) {
            self.count = count
            self.bytes = bytes
        }
    }

    public let orders: [RequestOrder]
    public let lead: Lead
    public static let window = 32
    public static let anchorLength = 4
    /// How far apart in an order consecutive gets may be and still count as following it.
    public static let anchorGap = 64
    public static let maxDivergences = 3

    /// The order followed, if any.
    public private(set) var following: Int?
    private var positions: [UInt64: Int] = [:]
    /// The newest order holding each key, and where (built when first needed).
    private var index: [UInt64: (order: Int, position: Int)]?
    /// The furthest position in the followed order the run has asked for.
    public private(set) var cursor = -1
    /// The next position to hand out (never one already asked for).
    private var next = 0
    /// Positions the run has asked for, in the order followed (kept only when `fillsGaps`).
    private var asked: Set<Int> = []
    /// Bytes prefetched at positions past `cursor`, by position.
    private var ahead: [Int: Int64] = [:]
    public private(set) var aheadBytes: Int64 = 0
    /// Whether each of the last gets while following was in the order.
    private var recent: [Bool] = []
    private var streak: (order: Int, position: Int, count: Int)?
    public private(set) var divergences = 0

    /// Whether positions a run jumped over are still handed out: worth it where each costs a get
    /// round trips (a remote), not where a get makes its output as fast as prefetch would (local:
    /// the get would then wait for a low-priority thread; 7 % slower warm `go build std`).
    public let fillsGaps: Bool

    /// Follows the newest order recorded in `context`, if there is one.
    public init(orders: [RequestOrder], context: UInt64?, lead: Lead, fillsGaps: Bool = false) {
        self.orders = orders
        self.lead = lead
        self.fillsGaps = fillsGaps
        if let context, context != 0, let newest = orders.lastIndex(where: { $0.context == context }) {
            follow(newest, from: -1)
        }
    }

    /// Whether there is nothing more to do this run.
    public var isOver: Bool {
        divergences >= Self.maxDivergences || orders.isEmpty || (following.map { next >= orders[$0].keys.count } ?? false)
    }

    /// Notes that the run asked for `key`.
    public mutating func observe(_ key: UInt64) {
        if following != nil {
            let position = positions[key]
            recent.append(position != nil)
            if recent.count > Self.window { recent.removeFirst() }
            if let position { advance(to: position) }
            if recent.count == Self.window, recent.count(where: { !$0 }) > Self.window / 2 {
                following = nil
                divergences += 1
                streak = nil
            }
            return
        }
        guard divergences < Self.maxDivergences, !orders.isEmpty else { return }
        if index == nil {
            var built: [UInt64: (order: Int, position: Int)] = [:]
            for (order, recorded) in orders.enumerated() {
                for (position, key) in recorded.keys.enumerated() { built[key] = (order, position) }
            }
            index = built
        }
        guard let (order, position) = index![key] else {
            streak = nil
            return
        }
        if let last = streak, last.order == order, position > last.position, position - last.position <= Self.anchorGap {
            streak = (order, position, last.count + 1)
        } else {
            streak = (order, position, 1)
        }
        if streak!.count >= Self.anchorLength { follow(order, from: position) }
    }

    /// Whether `nextItem()` would give an item.
    public var hasItem: Bool {
        guard let order = following else { return false }
        return next < orders[order].keys.count && next - cursor <= lead.count && aheadBytes < lead.bytes
    }

    /// The next key to prefetch, if the lead allows one.
    public mutating func nextItem() -> Item? {
        guard hasItem, let order = following else { return nil }
        defer {
            next += 1
            skipAsked()
        }
        return Item(order: order, position: next, key: orders[order].keys[next])
    }

    /// Notes that `item` was prefetched, `size` bytes (0 if it was not).
    public mutating func completed(_ item: Item, size: Int64) {
        guard item.order == following, item.position > cursor, size > 0 else { return }
        ahead[item.position, default: 0] += size
        aheadBytes += size
    }

    private mutating func follow(_ order: Int, from position: Int) {
        following = order
        positions = [:]
        for (position, key) in orders[order].keys.enumerated() where positions[key] == nil { positions[key] = position }
        cursor = position
        next = position + 1
        ahead = [:]
        aheadBytes = 0
        recent = []
        asked = []
    }

    /// Notes a get at `position`; the lead is counted past the furthest. Positions the run
    /// jumped over are handed out still if `fillsGaps` (they are asked for soon: the go command's
    /// order is the last run's with its workers' timing shuffled in), else left to the gets.
    private mutating func advance(to position: Int) {
        if fillsGaps {
            asked.insert(position)
            skipAsked()
        } else {
            next = max(next, position + 1)  // nothing at or before it is handed out: no set to keep
        }
        guard position > cursor else { return }
        cursor = position
        for (done, size) in ahead where done <= position {
            ahead[done] = nil
            aheadBytes -= size
        }
    }

    /// Moves `next` past positions already asked for.
    private mutating func skipAsked() {
        guard let order = following else { return }
        while next < orders[order].keys.count, asked.contains(next) { next += 1 }
    }
}
