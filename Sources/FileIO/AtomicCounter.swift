import Synchronization

/// A thread-safe counter.
public final class AtomicCounter: Sendable {
    private let value = Atomic<Int64>(0)
    public init() {}
    /// Adds `amount` and returns the new value.
    @discardableResult
    public func add(_ amount: Int64 = 1) -> Int64 {
        value.add(amount, ordering: .relaxed).newValue
    }
    /// The current value.
    public var current: Int64 { value.load(ordering: .relaxed) }
}
