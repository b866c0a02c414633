/// How far a long store operation (verify, gc, trim, export, import) has got, for a progress
/// display: items (outputs, packs) and bytes, each done of a total (0 when not known).
public struct Progress: Sendable, Equatable {
    public var items: Int64 = 0
    public var totalItems: Int64 = 0
    public var bytes: Int64 = 0
    public var totalBytes: Int64 = 0

    public init(items: Int64 = 0, totalItems: Int64 = 0, bytes: Int64 = 0, totalBytes: Int64 = 0) {
        self.items = items
        self.totalItems = totalItems
        self.bytes = bytes
        self.totalBytes = totalBytes
    }
}

/// Called as a long operation advances (often; a display throttles it itself).
public typealias ProgressHandler = (Progress) -> Void
