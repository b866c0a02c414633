import CacheProg

/// Plays the go command against a handler in this process, as `HummingbirdTesting` drives an
/// application without a network: the server runs over in-memory pipes, and `body` gets a
/// `CacheProgClient` connected to it, which speaks exactly as the go command does (handshake,
/// concurrent gets and puts, `close`).
///
///     let (entry, ending) = try await CacheServer(handler: MyCache()).test { client in
///         _ = try await client.put(id, body: bytes)
///         let entry = try await client.get(id)
///         try await client.close()
///         return entry
///     }
///     // entry?.diskPath holds `bytes`; ending == .closed
extension CacheServer {
    /// Runs this server with a client connected to it; returns what `body` returned and how the
    /// server's run ended (`.closed` if `body` sent `close`, else `.endOfInput` once `body` is
    /// done and the client's side of the pipe is closed).
    public func test<R: Sendable>(
        requestTimeout: Duration? = .seconds(60), _ body: @Sendable (CacheProgClient) async throws -> R
    ) async throws -> (result: R, ending: CacheServer.Ending) {
        let requests = InMemoryPipe()
        let responses = InMemoryPipe()
        return try await withThrowingTaskGroup(of: CacheServer.Ending?.self) { group in
            group.addTask {
                let ending = try await run(input: requests.reader, output: responses.writer)
                await responses.writer.close()
                return ending
            }
            let result = try await CacheProgClient.withConnection(
                reader: responses.reader, writer: requests.writer, requestTimeout: requestTimeout, body)
            var ending: CacheServer.Ending?
            for try await value in group { ending = value ?? ending }
            return (result, ending!)
        }
    }
}

/// Runs a server for `handler` in this process and a client playing the go command against it
/// (see `CacheServer.test`).
public func withInProcessServer<R: Sendable>(
    _ handler: some CacheHandler, middleware: [any CacheMiddleware] = [], configuration: CacheServer.Configuration = .init(),
    _ body: @Sendable (CacheProgClient) async throws -> R
) async throws -> (result: R, ending: CacheServer.Ending) {
    try await CacheServer(handler: handler, middleware: middleware, configuration: configuration).test(body)
}
