@_exported import TestSupport
import CacheProg
import CacheProgTesting
import FileIO
import Synchronization

/// A backend in memory that writes each body to a file, with optional random delays so replies
/// come back out of order.
final class MemoryCache: CacheHandler {
    private let entries = Mutex<[ActionID: CacheEntry]>([:])
    let directory: String
    let jitter: Bool
    let closes = AtomicCounter()

    init(directory: String, jitter: Bool = false) {
        self.directory = directory
        self.jitter = jitter
    }

    func get(_ actionID: ActionID, context: CacheContext) async throws -> CacheEntry? {
        if jitter { try await Task.sleep(for: .microseconds(Int.random(in: 0...2000))) }
        return entries.withLock { $0[actionID] }
    }

    func put(_ request: PutRequest, context: CacheContext) async throws -> String {
        if jitter { try await Task.sleep(for: .microseconds(Int.random(in: 0...2000))) }
        let path = directory + "/" + request.outputID.hex
        try FileSystem.writeFileAtomically(path, try request.body.readAll())
        entries.withLock {
            $0[request.actionID] = CacheEntry(outputID: request.outputID, size: request.body.size, time: .now, diskPath: path)
        }
        return path
    }

    func close(context: CacheContext) async throws { closes.add() }
}

/// A fresh private directory under /tmp, removed by `cleanup`.
func makeTemporaryDirectory() throws -> String {
    let path = "/tmp/cacheprog-test-" + FileSystem.uniqueSuffix()
    try FileSystem.createDirectories(path)
    return path
}

func actionID(_ n: Int) -> ActionID {
    var bytes = [UInt8](repeating: 0, count: 32)
    withUnsafeBytes(of: UInt64(n).littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
    return ActionID(bytes: bytes)!
}

/// Runs a server over in-memory pipes and a client connected to it (CacheProgTesting).
func withInMemoryServer<R: Sendable>(
    _ handler: some CacheHandler, middleware: [any CacheMiddleware] = [], spool: String,
    _ body: @Sendable (CacheProgClient) async throws -> R
) async throws -> (R, CacheServer.Ending) {
    let server = CacheServer(handler: handler, middleware: middleware, configuration: .init(inMemoryBodyLimit: 4096, spoolDirectory: spool))
    let (result, ending) = try await server.test(requestTimeout: nil, body)
    return (result, ending)
}

/// The directory holding the test bundle, where SwiftPM also puts the package's executables.
var productsDirectory: String {
    FileSystem.parentDirectory(of: FileSystem.absolutePath(CommandLine.arguments[0]))
}

