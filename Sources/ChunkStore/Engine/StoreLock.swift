import FileIO
import Synchronization

/// The lock that keeps garbage collection and puts apart, across processes: puts hold it shared
/// (while any put of this process runs), gc holds it exclusively. So gc never deletes a chunk that
/// a put has just found and is about to name in a manifest.
final class StoreLock: Sendable {
    private let path: String
    private let shared: FileDescriptor
    private let holders = Mutex(0)

    init(path: String) throws {
        self.path = path
        shared = try FileDescriptor.open(path, [.readWrite, .create, .noFollow], permissions: 0o600)
    }

    deinit { shared.close() }

    /// Runs `body` holding the lock shared (many puts, in any processes, at once).
    func withShared<R>(_ body: () throws -> R) throws -> R {
        try holders.withLock { count in
            if count == 0 { _ = try shared.lock(exclusive: false, wait: true) }
            count += 1
        }
        defer {
            holders.withLock { count in
                count -= 1
                if count == 0 { shared.unlock() }
            }
        }
        return try body()
    }

    /// Runs `body` holding the lock exclusively (no put runs anywhere meanwhile). With `wait`
    /// false, returns nil at once if puts are running.
    func withExclusive<R>(wait: Bool = true, _ body: () throws -> R) throws -> R? {
        let descriptor = try FileDescriptor.open(path, [.readWrite, .create, .noFollow], permissions: 0o600)
        defer { descriptor.close() }
        guard try descriptor.lock(exclusive: true, wait: wait) else { return nil }
        return try body()
    }
}
