import Dispatch

/// Runs `body`, which blocks (a semaphore, a pipe), on a thread of its own and returns what it
/// returns. Not `DispatchQueue.global()`: on Linux Swift's cooperative threads (one per core) are
/// that queue's, and a test that blocks one of them can stall every other test running at once.
public func onThreadOfItsOwn<T: Sendable>(_ label: String, _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue(label: label).async { continuation.resume(returning: body()) }
    }
}
