import CacheProgWire

/// A request that passed validation, as middleware sees it.
public enum CacheRequest: Sendable {
    case get(ActionID)
    case put(PutRequest)
    case close

    /// The protocol's command for it.
    public var command: Command {
        switch self {
        case .get: .get
        case .put: .put
        case .close: .close
        }
    }

    /// Body bytes carried (puts only).
    public var bodySize: Int64 {
        if case .put(let put) = self { return put.body.size }
        return 0
    }
}

/// The answer to a `CacheRequest`, before it becomes a `Response` on the wire.
public enum CacheResult: Sendable, Equatable {
    /// A get found the action.
    case hit(CacheEntry)
    /// A get did not.
    case miss
    /// A put stored the body; the path holds it.
    case stored(diskPath: String)
    /// A close completed.
    case closed

    /// The wire response for request `id`.
    public func response(id: Int64) -> Response {
        switch self {
        case .hit(let entry):
            Response(id: id, outputID: entry.outputID.bytes, size: entry.size, time: entry.time, diskPath: entry.diskPath)
        case .miss:
            Response(id: id, miss: true)
        case .stored(let diskPath):
            Response(id: id, diskPath: diskPath)
        case .closed:
            Response(id: id)
        }
    }
}
