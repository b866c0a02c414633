import CacheProgWire
import Digests
import FileIO
import Synchronization

/// Drives a cache program as the go command does: waits for its capabilities, sends `get`,
/// `put` and `close` with many requests in flight, and matches replies by ID.
///
/// Start one with `withProgram(_:)` (a subprocess) or `withConnection(reader:writer:)` (any byte
/// streams, such as an `InMemoryPipe` to a `CacheServer` in the same process). The client lives
/// for the closure's duration.
public final class CacheProgClient: Sendable {
    /// Why a request failed.
    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public struct Code: Hashable, Sendable {
            private let name: String
            private init(_ name: String) { self.name = name }
            /// The program ended (or closed its output) with requests pending.
            public static let programExited = Code("program exited")
            /// The program wrote something that is not a valid response, or an unknown ID.
            public static let protocolViolation = Code("protocol violation")
            /// No reply within the timeout.
            public static let timedOut = Code("timed out")
            /// The program answered with `Err`.
            public static let requestFailed = Code("request failed")
            /// The program does not support the command.
            public static let unsupported = Code("unsupported")
        }

        public let code: Code
        public let message: String
        public var description: String { message }
    }

    /// A get hit as the program reported it.
    public struct Entry: Hashable, Sendable {
        public var outputID: OutputID
        public var size: Int64
        /// Nil if the program sent none (the go command then uses the current time).
        public var time: Timestamp?
        public var diskPath: String
    }

    /// What a put returns.
    public struct Stored: Hashable, Sendable {
        public var outputID: OutputID
        public var size: Int64
        public var diskPath: String
    }

    private enum Slot {
        case expecting
        case waiting(CheckedContinuation<Response, any Error>)
        case arrived(Response)
    }

    private struct State {
        var nextID: Int64 = 0
        var slots: [Int64: Slot] = [0: .expecting]
        var failure: Failure?
        var knownCommands: Set<Command> = []
    }

    private let state = Mutex(State())
    private let writer: any ByteWriter
    private let writeLock = AsyncLock()
    private let requestTimeout: Duration?

    private init(writer: any ByteWriter, requestTimeout: Duration?) {
        self.writer = writer
        self.requestTimeout = requestTimeout
    }

    // MARK: Starting

    /// Runs `body` with a client connected to a program's output (`reader`) and input (`writer`).
    /// Waits up to `handshakeTimeout` for the capabilities message first. When `body` ends, the
    /// program's input is closed; if its output has not ended `exitTimeout` later, `terminate`
    /// is called (`withProgram` kills the process there).
    public static func withConnection<R: Sendable>(
        reader: some ByteReader, writer: some ByteWriter,
        handshakeTimeout: Duration = .seconds(10), requestTimeout: Duration? = nil,
        exitTimeout: Duration = .seconds(10), terminate: (@Sendable () async -> Void)? = nil,
        _ body: (CacheProgClient) async throws -> R
    ) async throws -> R {
        let client = CacheProgClient(writer: writer, requestTimeout: requestTimeout)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.readLoop(reader) }
            let outcome: Result<R, any Error>
            do {
                let capabilities = try await client.awaitReply(0, timeout: handshakeTimeout)
                guard !capabilities.knownCommands.isEmpty else {
                    throw Failure(code: .protocolViolation, message: "cache program declared no supported commands")
                }
                client.state.withLock { $0.knownCommands = Set(capabilities.knownCommands) }
                outcome = .success(try await body(client))
            } catch {
                outcome = .failure(error)
            }
            await writer.close()
            group.addTask {
                try? await Task.sleep(for: exitTimeout)
                if !Task.isCancelled { await terminate?() }
            }
            _ = try? await group.next()  // the program's output ended, or the timer fired
            group.cancelAll()
            client.failAll(Failure(code: .programExited, message: "client finished"))
            return try outcome.get()
        }
    }

    /// Starts `arguments` as a subprocess and runs `body` with a client connected to it. When
    /// `body` returns, the program's input is closed; if it has not exited `exitTimeout` later,
    /// it is killed. Also returns the program's exit status.
    public static func withProgram<R: Sendable>(
        _ arguments: [String], environment: [String: String]? = nil,
        handshakeTimeout: Duration = .seconds(10), requestTimeout: Duration? = nil,
        exitTimeout: Duration = .seconds(10),
        _ body: (CacheProgClient) async throws -> R
    ) async throws -> (result: R, exitStatus: Int32) {
        let child = try ChildProcess.launch(arguments, environment: environment)
        let reader = FileDescriptorReader(child.output)
        // Put bodies block while the program does not read: off the cooperative threads, which
        // must stay free to read its responses.
        let writer = FileDescriptorWriter(child.input, closesDescriptor: true, offThePool: true)
        let outcome: Result<R, any Error>
        do {
            outcome = .success(try await withConnection(
                reader: reader, writer: writer, handshakeTimeout: handshakeTimeout,
                requestTimeout: requestTimeout, exitTimeout: exitTimeout, terminate: { child.kill() }, body))
        } catch {
            outcome = .failure(error)
            child.kill()
        }
        // The program's output has ended (or it was killed); give it the same grace to exit.
        let status = await withTaskGroup(of: Int32?.self) { group in
            group.addTask { await child.wait() }
            group.addTask {
                try? await Task.sleep(for: exitTimeout)
                if !Task.isCancelled { child.kill() }
                return nil
            }
            var status: Int32 = 0
            for await value in group {
                if let value {
                    status = value
                    group.cancelAll()
                }
            }
            return status
        }
        child.output.close()
        return (try outcome.get(), status)
    }

    // MARK: Requests

    /// The commands the program declared.
    public var knownCommands: Set<Command> { state.withLock { $0.knownCommands } }

    /// Looks up `actionID`; nil for a miss.
    public func get(_ actionID: ActionID) async throws -> Entry? {
        try requireCommand(.get)
        let response = try await send(Request(id: 0, command: .get, actionID: actionID.bytes), body: nil)
        if response.miss { return nil }
        guard let outputID = response.outputID.flatMap(OutputID.init(bytes:)) else {
            throw Failure(code: .protocolViolation, message: "get hit without a 32-byte OutputID")
        }
        guard let diskPath = response.diskPath, !diskPath.isEmpty else {
            throw Failure(code: .protocolViolation, message: "get hit without a DiskPath")
        }
        return Entry(outputID: outputID, size: response.size, time: response.time, diskPath: diskPath)
    }

    /// Stores `body` under `actionID`, with its SHA-256 as the output ID (as the go command does).
    public func put(_ actionID: ActionID, body: [UInt8]) async throws -> Stored {
        let outputID = OutputID(of: body)
        let diskPath = try await put(actionID, outputID: outputID, size: Int64(body.count)) { emit in
            var offset = 0
            while offset < body.count {
                let end = min(body.count, offset + (1 << 16))
                try await emit(Array(body[offset..<end]))
                offset = end
            }
        }
        return Stored(outputID: outputID, size: Int64(body.count), diskPath: diskPath)
    }

    /// Stores the contents of the file at `path`, streamed: hashed in one pass (unless the
    /// caller knows its `outputID`, as the go command does), sent in another.
    public func put(_ actionID: ActionID, file path: String, outputID known: OutputID? = nil) async throws -> Stored {
        let descriptor = try FileDescriptor.open(path, .readOnly)
        defer { descriptor.close() }
        let outputID: OutputID
        let total: Int64
        if let known {
            outputID = known
            total = try descriptor.status().size
        } else {
            (outputID, total) = try OutputID.ofContents(of: descriptor)
        }
        let diskPath = try await put(actionID, outputID: outputID, size: total) { emit in
            var offset: Int64 = 0
            var piece = [UInt8](repeating: 0, count: 1 << 16)
            while offset < total {
                let n = try piece.withUnsafeMutableBytes { try descriptor.read(into: $0, at: offset) }
                guard n > 0 else { throw Failure(code: .requestFailed, message: "\(path) shrank while being sent") }
                try await emit(Array(piece[..<n]))
                offset += Int64(n)
            }
        }
        return Stored(outputID: outputID, size: total, diskPath: diskPath)
    }

    private func put(
        _ actionID: ActionID, outputID: OutputID, size: Int64,
        body: @escaping @Sendable (_ emit: ([UInt8]) async throws -> Void) async throws -> Void
    ) async throws -> String {
        try requireCommand(.put)
        let request = Request(id: 0, command: .put, actionID: actionID.bytes, outputID: outputID.bytes, bodySize: size)
        let response = try await send(request, body: size > 0 ? body : nil)
        guard let diskPath = response.diskPath, !diskPath.isEmpty else {
            throw Failure(code: .protocolViolation, message: "put reply without a DiskPath")
        }
        return diskPath
    }

    /// Sends `close` and waits for the reply. A program that exits without replying is accepted,
    /// as the go command accepts it.
    public func close() async throws {
        guard knownCommands.contains(.close) else { return }
        do {
            _ = try await send(Request(id: 0, command: .close), body: nil)
        } catch let failure as Failure where failure.code == .programExited {
            return
        }
    }

    private func requireCommand(_ command: Command) throws {
        guard knownCommands.contains(command) else {
            throw Failure(code: .unsupported, message: "cache program does not support \(command)")
        }
    }

    private func send(
        _ request: Request,
        body: (@Sendable (_ emit: ([UInt8]) async throws -> Void) async throws -> Void)?
    ) async throws -> Response {
        var request = request
        request.id = try state.withLock { state in
            if let failure = state.failure { throw failure }
            state.nextID += 1
            state.slots[state.nextID] = .expecting
            return state.nextID
        }
        do {
            try await writeLock.withLock {
                var bytes = request.encoded()
                guard let body else {
                    try await writer.write(bytes)
                    return
                }
                var encoder = BodyEncoder()
                encoder.begin(into: &bytes)
                try await body { piece in
                    piece.withUnsafeBytes { encoder.encode($0, into: &bytes) }
                    if bytes.count >= 1 << 16 {
                        try await writer.write(bytes)
                        bytes.removeAll(keepingCapacity: true)
                    }
                }
                encoder.end(into: &bytes)
                try await writer.write(bytes)
            }
        } catch {
            _ = state.withLock { $0.slots.removeValue(forKey: request.id) }
            throw Failure(code: .programExited, message: "could not send request \(request.id): \(error)")
        }
        let response = try await awaitReply(request.id, timeout: requestTimeout)
        if let err = response.err, !err.isEmpty {
            throw Failure(code: .requestFailed, message: err)
        }
        return response
    }

    // MARK: Replies

    private func awaitReply(_ id: Int64, timeout: Duration?) async throws -> Response {
        guard let timeout else { return try await awaitSlot(id) }
        return try await withThrowingTaskGroup(of: Response?.self) { group in
            group.addTask { try await self.awaitSlot(id) }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            while let next = try await group.next() {
                if let response = next { return response }
                fail(id, Failure(code: .timedOut, message: "no reply to request \(id) within \(timeout)"))
            }
            throw Failure(code: .timedOut, message: "no reply to request \(id)")
        }
    }

    private func awaitSlot(_ id: Int64) async throws -> Response {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let ready: Result<Response, Failure>? = state.withLock { state in
                    switch state.slots[id] {
                    case .arrived(let response):
                        state.slots[id] = nil
                        return .success(response)
                    case .expecting:
                        state.slots[id] = .waiting(continuation)
                        return nil
                    case .waiting, nil:
                        return .failure(state.failure ?? Failure(code: .timedOut, message: "request \(id) abandoned"))
                    }
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            fail(id, Failure(code: .timedOut, message: "request \(id) cancelled"))
        }
    }

    /// Fails one pending request.
    private func fail(_ id: Int64, _ failure: Failure) {
        let waiter: CheckedContinuation<Response, any Error>? = state.withLock { state in
            guard case .waiting(let continuation) = state.slots[id] else {
                state.slots[id] = nil
                return nil
            }
            state.slots[id] = nil
            return continuation
        }
        waiter?.resume(throwing: failure)
    }

    /// Fails every pending request and all later ones.
    private func failAll(_ failure: Failure) {
        let waiters: [CheckedContinuation<Response, any Error>] = state.withLock { state in
            if state.failure == nil { state.failure = failure }
            let waiting = state.slots.values.compactMap { slot -> CheckedContinuation<Response, any Error>? in
                if case .waiting(let continuation) = slot { return continuation }
                return nil
            }
            state.slots.removeAll()
            return waiting
        }
        for waiter in waiters { waiter.resume(throwing: state.withLock { $0.failure! }) }
    }

    private func deliver(_ response: Response) -> Bool {
        let waiter: CheckedContinuation<Response, any Error>?? = state.withLock { state in
            switch state.slots[response.id] {
            case .expecting:
                state.slots[response.id] = .arrived(response)
                return .some(nil)
            case .waiting(let continuation):
                state.slots[response.id] = nil
                return .some(continuation)
            case .arrived, nil:
                return nil
            }
        }
        guard let waiter else { return false }
        waiter?.resume(returning: response)
        return true
    }

    private func readLoop(_ reader: some ByteReader) async {
        var decoder = ResponseDecoder()
        var violation: Failure?
        func handle(_ result: Result<Response, WireError>) {
            guard violation == nil else { return }
            switch result {
            case .success(let response):
                if !deliver(response) {
                    violation = Failure(code: .protocolViolation, message: "reply for unknown request ID \(response.id)")
                }
            case .failure(let error):
                violation = Failure(code: .protocolViolation, message: "bad reply from cache program: \(error)")
            }
        }
        do {
            while violation == nil {
                let bytes = try await reader.read()
                if bytes.isEmpty {
                    decoder.finish(handle)
                    break
                }
                bytes.withUnsafeBytes { decoder.feed($0, handle) }
            }
        } catch {
            violation = Failure(code: .programExited, message: "reading from cache program: \(error)")
        }
        failAll(violation ?? Failure(code: .programExited, message: "cache program exited with requests pending"))
    }
}

extension OutputID {
    /// The output ID (SHA-256) and size of what `descriptor` holds, read from its start.
    public static func ofContents(of descriptor: FileDescriptor) throws -> (OutputID, size: Int64) {
        var hasher = SHA256()
        var size: Int64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try descriptor.read(into: $0, at: size) }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            size += Int64(n)
        }
        return (OutputID(hasher.finalize()), size)
    }
}
