import CacheProgWire
import Logging

/// Logs every request with its outcome and duration.
public struct LoggingMiddleware: CacheMiddleware {
    /// The level for successful requests; failures log at `.warning`.
    public var level: Logger.Level

    public init(level: Logger.Level = .debug) { self.level = level }

    public func handle(
        _ request: CacheRequest, context: CacheContext,
        next: (CacheRequest, CacheContext) async throws -> CacheResult
    ) async throws -> CacheResult {
        let start = ContinuousClock.now
        do {
            let result = try await next(request, context)
            context.logger.log(level: level, "\(describe(request)) → \(describe(result)) in \(ContinuousClock.now - start)", metadata: ["id": "\(context.requestID)"])
            return result
        } catch {
            context.logger.warning("\(describe(request)) failed: \(error)", metadata: ["id": "\(context.requestID)"])
            throw error
        }
    }

    private func describe(_ request: CacheRequest) -> String {
        switch request {
        case .get(let actionID): "get \(actionID.hex.prefix(16))"
        case .put(let put): "put \(put.actionID.hex.prefix(16)) \(put.body.size) B"
        case .close: "close"
        }
    }

    private func describe(_ result: CacheResult) -> String {
        switch result {
        case .hit(let entry): "hit \(entry.size) B"
        case .miss: "miss"
        case .stored: "stored"
        case .closed: "closed"
        }
    }
}
