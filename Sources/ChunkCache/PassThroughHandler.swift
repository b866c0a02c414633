import CacheProg
import FileIO

/// What chunkcache serves when its store cannot be used (refused as unsafe, unreadable, locked
/// by a broken process): every get misses and every put is written to a private temporary
/// directory, because the go command needs a file, and forgotten. The build goes on, uncached,
/// instead of failing because its cache did.
public final class PassThroughHandler: CacheHandler {
    /// The private directory holding this run's files.
    public let directory: String

    public init(temporaryRoot: String = "/tmp") throws {
        directory = temporaryRoot + "/chunkcache-passthrough-" + FileSystem.uniqueSuffix()
        try FileSystem.createDirectory(directory, permissions: 0o700)
    }

    public func get(_ actionID: ActionID, context: CacheContext) async throws -> CacheEntry? { nil }

    public func put(_ request: PutRequest, context: CacheContext) async throws -> String {
        let path = directory + "/" + request.outputID.hex
        switch request.body.storage {
        case .file(let spooled): try FileSystem.rename(spooled, to: path)
        case .bytes(let bytes): try FileSystem.writeFileAtomically(path, bytes, permissions: 0o644)
        }
        return path
    }

    public func close(context: CacheContext) async throws {
        try? FileSystem.removeTree(directory)
    }
}
