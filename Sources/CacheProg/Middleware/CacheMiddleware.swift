/// Wraps request handling: look at or change a request, call `next`, look at or change the result.
///
/// Middleware runs in the order given to `CacheServer`: the first sees the request first and the
/// result last.
public protocol CacheMiddleware: Sendable {
    func handle(
        _ request: CacheRequest, context: CacheContext,
        next: (CacheRequest, CacheContext) async throws -> CacheResult
    ) async throws -> CacheResult
}

/// The handler wrapped in its middleware, built once.
struct Responder: Sendable {
    let respond: @Sendable (CacheRequest, CacheContext) async throws -> CacheResult

    init(handler: some CacheHandler, middleware: [any CacheMiddleware]) {
        var respond: @Sendable (CacheRequest, CacheContext) async throws -> CacheResult = { request, context in
            switch request {
            case .get(let actionID):
                if let entry = try await handler.get(actionID, context: context) { return .hit(entry) }
                return .miss
            case .put(let put):
                return .stored(diskPath: try await handler.put(put, context: context))
            case .close:
                try await handler.close(context: context)
                return .closed
            }
        }
        for layer in middleware.reversed() {
            let next = respond
            respond = { request, context in try await layer.handle(request, context: context, next: next) }
        }
        self.respond = respond
    }
}
