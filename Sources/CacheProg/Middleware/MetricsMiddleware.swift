import CacheProgWire
import Synchronization

/// Counts requests, bytes and time per command. Read `metrics.snapshot()` at any time.
public struct MetricsMiddleware: CacheMiddleware {
    /// Where the counts accumulate; share it to read them.
    public let metrics: ServerMetrics

    public init(metrics: ServerMetrics = ServerMetrics()) { self.metrics = metrics }

    public func handle(
        _ request: CacheRequest, context: CacheContext,
        next: (CacheRequest, CacheContext) async throws -> CacheResult
    ) async throws -> CacheResult {
        let start = ContinuousClock.now
        do {
            let result = try await next(request, context)
            metrics.record(request.command, result: result, bytesIn: request.bodySize, duration: ContinuousClock.now - start)
            return result
        } catch {
            metrics.record(request.command, result: nil, bytesIn: request.bodySize, duration: ContinuousClock.now - start)
            throw error
        }
    }
}

/// Counters a `MetricsMiddleware` fills, safe to share between tasks.
public final class ServerMetrics: Sendable {
    /// Totals for one command.
    public struct CommandTotals: Sendable, Equatable {
        public var count = 0
        public var errors = 0
        public var hits = 0
        public var misses = 0
        /// Body bytes received (puts) or served (get hits).
        public var bytes: Int64 = 0
        public var totalTime: Duration = .zero
        public var maxTime: Duration = .zero

        /// Mean time per request.
        public var meanTime: Duration { count == 0 ? .zero : totalTime / count }
    }

    private let totals = Mutex<[Command: CommandTotals]>([:])

    public init() {}

    func record(_ command: Command, result: CacheResult?, bytesIn: Int64, duration: Duration) {
        totals.withLock { totals in
            var entry = totals[command, default: CommandTotals()]
            entry.count += 1
            entry.totalTime += duration
            entry.maxTime = max(entry.maxTime, duration)
            entry.bytes += bytesIn
            switch result {
            case .hit(let hit):
                entry.hits += 1
                entry.bytes += hit.size
            case .miss: entry.misses += 1
            case nil: entry.errors += 1
            default: break
            }
            totals[command] = entry
        }
    }

    /// The totals so far, per command.
    public func snapshot() -> [Command: CommandTotals] { totals.withLock { $0 } }

    /// One line per command, for logs.
    public func summary() -> String {
        snapshot().sorted { $0.key.rawValue < $1.key.rawValue }.map { command, t in
            "\(command): \(t.count) (hits \(t.hits), misses \(t.misses), errors \(t.errors)), \(t.bytes) B, mean \(t.meanTime), max \(t.maxTime)"
        }.joined(separator: "\n")
    }
}
