import CacheProgWire
import FileIO
import Logging

/// Serves the GOCACHEPROG protocol: reads requests, runs them through middleware into a
/// `CacheHandler`, and writes the responses.
///
/// It sends the capabilities message first (unless `sendCapabilities(to:)` did, before the
/// handler was made), runs up to `maxConcurrentRequests` requests at once
/// (each in a task of its own, on the executor the handler names for it, if any) and answers each as
/// it completes (so in any order), through one writer. The reading loop never waits for a
/// handler, except for a free slot when that many are in flight. A request it cannot
/// read is answered with `Err` when its ID is known. `close` waits for everything in flight, is
/// answered, and ends `run`; so does the end of input (what `go list` does instead of `close`).
public struct CacheServer: Sendable {
    /// Limits and places.
    public struct Configuration: Sendable {
        /// Requests handled at once; more wait in order.
        public var maxConcurrentRequests: Int
        /// Bodies up to this size are held in memory; larger ones go to a file.
        public var inMemoryBodyLimit: Int
        /// Where large bodies are written while they arrive, unless the handler names a place
        /// (`CacheHandler.spoolDirectory(forBodyOf:)`). Handlers that keep bodies as files should
        /// point this at their own filesystem, so they can rename rather than copy.
        public var spoolDirectory: String
        /// The largest `BodySize` accepted.
        public var maxBodySize: Int64

        public init(maxConcurrentRequests: Int = 16, inMemoryBodyLimit: Int = 1 << 20, spoolDirectory: String = "/tmp", maxBodySize: Int64 = 1 << 36) {
            self.maxConcurrentRequests = maxConcurrentRequests
            self.inMemoryBodyLimit = inMemoryBodyLimit
            self.spoolDirectory = spoolDirectory
            self.maxBodySize = maxBodySize
        }
    }

    /// How a run ended.
    public enum Ending: Sendable, Equatable {
        /// The peer sent `close`, which was answered.
        case closed
        /// The input ended without `close`.
        case endOfInput
    }

    /// The commands this server advertises.
    public static var knownCommands: [Command] { [.get, .put, .close] }

    private let responder: Responder
    private let spoolDirectory: @Sendable (Int64) -> String?
    private let executor: @Sendable (Command) -> (any TaskExecutor)?
    private let configuration: Configuration
    private let logger: Logger

    public init(handler: some CacheHandler, middleware: [any CacheMiddleware] = [], configuration: Configuration = Configuration(), logger: Logger = Logger(label: "cacheprog")) {
        self.responder = Responder(handler: handler, middleware: middleware)
        self.spoolDirectory = { handler.spoolDirectory(forBodyOf: $0) }
        self.executor = { handler.executor(for: $0) }
        self.configuration = configuration
        self.logger = logger
    }

    /// One thing the read loop hands to the worker tasks.
    private enum Work {
        case serve(Request, PutBody?)
        case fail(id: Int64, message: String)
        case close(id: Int64)
    }

    /// Sends the capabilities message before there is a server, for a program whose handler takes
    /// time to make (a store to open): the go command waits for this message before it goes on,
    /// and the message does not depend on the handler. Requests sent meanwhile wait in the input
    /// until `run(input:output:capabilitiesSent: true)` reads them.
    public static func sendCapabilities(to output: some ByteWriter) async throws {
        try await output.write(Response.capabilities(knownCommands).encoded())
    }

    /// Serves until `close` or the end of `input`, first sending the capabilities message unless
    /// `capabilitiesSent` (see `sendCapabilities(to:)`).
    public func run(input: some ByteReader, output: some ByteWriter, capabilitiesSent: Bool = false) async throws -> Ending {
        if !capabilitiesSent { try await Self.sendCapabilities(to: output) }
        var decoder = RequestDecoder(maxBodySize: configuration.maxBodySize)
        var spool: (Request, BodySpool)?
        var ready: [Work] = []

        func handle(_ event: RequestEvent) {
            switch event {
            case .request(let request):
                if request.bodySize > 0 {
                    let directory = request.bodySize > Int64(configuration.inMemoryBodyLimit) ? spoolDirectory(request.bodySize) : nil
                    spool = (request, BodySpool(size: request.bodySize, inMemoryLimit: configuration.inMemoryBodyLimit, spoolDirectory: directory ?? configuration.spoolDirectory))
                } else if request.command == .close {
                    ready.append(.close(id: request.id))
                } else {
                    ready.append(.serve(request, request.command == .put ? PutBody(bytes: []) : nil))
                }
            case .body(let bytes):
                spool?.1.append(bytes)
            case .bodyEnd:
                guard let (request, body) = spool else { return }
                spool = nil
                do {
                    ready.append(.serve(request, try body.finish()))
                } catch {
                    ready.append(.fail(id: request.id, message: "put \(request.id): could not spool body: \(error)"))
                }
            case .error(let error):
                if let (request, body) = spool, request.id == error.requestID {
                    body.discard()
                    spool = nil
                }
                logger.warning("bad request: \(error)")
                if let id = error.requestID { ready.append(.fail(id: id, message: error.description)) }
            }
        }

        return try await withThrowingTaskGroup(of: Void.self) { group in
            var inFlight = 0
            defer { spool?.1.discard() }
            while true {
                let bytes = try await input.read()
                if bytes.isEmpty {
                    decoder.finish(handle)
                } else {
                    bytes.withUnsafeBytes { decoder.feed($0, handle) }
                }
                for work in ready {
                    if case .close(let id) = work {
                        try await group.waitForAll()
                        let response = await serveClose(id: id)
                        try await output.write(response.encoded())
                        return .closed
                    }
                    if inFlight >= configuration.maxConcurrentRequests {
                        try await group.next()
                        inFlight -= 1
                    }
                    inFlight += 1
                    let preferred: (any TaskExecutor)? = if case .serve(let request, _) = work { executor(request.command) } else { nil }
                    group.addTask(executorPreference: preferred) {
                        let response: Response
                        switch work {
                        case .serve(let request, let body): response = await serve(request, body: body)
                        case .fail(let id, let message): response = Response(id: id, err: message)
                        case .close: return
                        }
                        try await output.write(response.encoded())
                    }
                }
                ready.removeAll()
                if bytes.isEmpty {
                    try await group.waitForAll()
                    return .endOfInput
                }
            }
        }
    }

    /// Validates a decoded request and serves it.
    private func serve(_ request: Request, body: PutBody?) async -> Response {
        defer {
            if case .file(let path)? = body?.storage { try? FileSystem.remove(path) }
        }
        switch request.command {
        case .get:
            guard let actionID = request.actionID.flatMap(ActionID.init(bytes:)) else {
                return Response(id: request.id, err: "get \(request.id): ActionID must be \(ActionID.byteCount) bytes")
            }
            return await serve(.get(actionID), id: request.id)
        case .put:
            guard let actionID = request.actionID.flatMap(ActionID.init(bytes:)) else {
                return Response(id: request.id, err: "put \(request.id): ActionID must be \(ActionID.byteCount) bytes")
            }
            guard let outputID = request.outputID.flatMap(OutputID.init(bytes:)) else {
                return Response(id: request.id, err: "put \(request.id): OutputID must be \(OutputID.byteCount) bytes")
            }
            return await serve(.put(PutRequest(actionID: actionID, outputID: outputID, body: body ?? PutBody(bytes: []))), id: request.id)
        default:
            return Response(id: request.id, err: "unknown command \(request.command.rawValue.debugDescription)")
        }
    }

    /// `close`, on the handler's executor like every other request.
    private func serveClose(id: Int64) async -> Response {
        await withTaskExecutorPreference(executor(.close)) { await serve(.close, id: id) }
    }

    private func serve(_ request: CacheRequest, id: Int64) async -> Response {
        var context = CacheContext(logger: logger, requestID: id)
        context.logger[metadataKey: "request"] = "\(id)"
        do {
            return try await responder.respond(request, context).response(id: id)
        } catch {
            return Response(id: id, err: "\(error)")
        }
    }
}

extension CacheServer {
    /// Serves the go command over this process's standard input and output, as a GOCACHEPROG
    /// (`capabilitiesSent`: see `sendCapabilitiesOverStandardOutput`).
    public func runOverStandardStreams(capabilitiesSent: Bool = false) async throws -> Ending {
        try await run(input: FileDescriptorReader(.standardInput), output: FileDescriptorWriter(.standardOutput), capabilitiesSent: capabilitiesSent)
    }

    /// `sendCapabilities(to:)` on this process's standard output.
    public static func sendCapabilitiesOverStandardOutput() async throws {
        try await sendCapabilities(to: FileDescriptorWriter(.standardOutput))
    }
}
