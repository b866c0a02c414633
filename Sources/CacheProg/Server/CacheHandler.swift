import CacheProgWire
import FileIO
import Logging

/// A cache backend: what a `CacheServer` calls for each request.
///
/// A backend is a few lines: return an entry or nil from `get`, store the body and return a path
/// holding it from `put`. Calls arrive concurrently, so implementations must be safe to call from
/// several tasks at once.
public protocol CacheHandler: Sendable {
    /// Looks up `actionID`. Return nil for a miss. A thrown error is answered with `Err`, which the
    /// go command treats as a miss.
    func get(_ actionID: ActionID, context: CacheContext) async throws -> CacheEntry?

    /// Stores `request.body` under `request.actionID` and returns the absolute path of a file that
    /// holds exactly the body and stays until `close` (better: as long as anyone may read it).
    func put(_ request: PutRequest, context: CacheContext) async throws -> String

    /// The go command is done; called once, after every other request has been answered.
    func close(context: CacheContext) async throws

    /// Where the server should write a put body of `size` bytes, too large to hold in memory,
    /// while it arrives: a directory on the filesystem where the handler keeps bodies, so that
    /// `put` can rename the file into place rather than copy it; nil for the server's
    /// `Configuration.spoolDirectory`. Called on the server's reading path: it must not block.
    func spoolDirectory(forBodyOf size: Int64) -> String?

    /// Where the server runs this handler's requests of `command`: for requests that may block
    /// for long (waiting for a lock, a database, the network without async I/O), an executor of
    /// the handler's own threads, so that they never hold the cooperative threads that read the
    /// next requests. Each such request runs there from start to reply. Nil (the default) for
    /// the cooperative pool: for requests that never block for long, which are answered fastest
    /// there (no hand-off to another thread). Called on the server's reading path.
    func executor(for command: Command) -> (any TaskExecutor)?
}

extension CacheHandler {
    public func close(context: CacheContext) async throws {}
    public func spoolDirectory(forBodyOf size: Int64) -> String? { nil }
    public func executor(for command: Command) -> (any TaskExecutor)? { nil }
}

/// What a `get` hit returns.
public struct CacheEntry: Hashable, Sendable {
    /// The output ID stored with the body.
    public var outputID: OutputID
    /// The body's size in bytes.
    public var size: Int64
    /// When the body was put.
    public var time: Timestamp
    /// Absolute path of a file holding exactly the body, with no file extension.
    public var diskPath: String

    public init(outputID: OutputID, size: Int64, time: Timestamp, diskPath: String) {
        self.outputID = outputID
        self.size = size
        self.time = time
        self.diskPath = diskPath
    }
}

/// A `put`: the key, the output ID the go command computed, and the body.
public struct PutRequest: Sendable {
    public var actionID: ActionID
    public var outputID: OutputID
    public var body: PutBody

    public init(actionID: ActionID, outputID: OutputID, body: PutBody) {
        self.actionID = actionID
        self.outputID = outputID
        self.body = body
    }
}

/// A put body, decoded as it arrived: small ones in memory, large ones in a spool file.
public struct PutBody: Sendable {
    /// Where the bytes are.
    public enum Storage: Sendable {
        /// All of the body, in memory.
        case bytes([UInt8])
        /// A file holding exactly the body. The handler may rename it away (it is on the
        /// server's spool directory's filesystem); otherwise the server removes it afterwards.
        case file(path: String)
    }

    /// Bytes in the body.
    public let size: Int64
    /// Where they are.
    public let storage: Storage

    public init(bytes: [UInt8]) {
        self.size = Int64(bytes.count)
        self.storage = .bytes(bytes)
    }

    public init(file path: String, size: Int64) {
        self.size = size
        self.storage = .file(path: path)
    }

    /// The whole body in memory (reads the spool file if there is one).
    public func readAll() throws -> [UInt8] {
        switch storage {
        case .bytes(let bytes): bytes
        case .file(let path): try FileSystem.readFile(path)
        }
    }
}

/// What a handler and its middleware know of the request in hand.
public struct CacheContext: Sendable {
    /// Logs to standard error (never standard output, which carries the protocol).
    public var logger: Logger
    /// The request's ID, unique in this process's run.
    public let requestID: Int64

    public init(logger: Logger, requestID: Int64) {
        self.logger = logger
        self.requestID = requestID
    }
}
