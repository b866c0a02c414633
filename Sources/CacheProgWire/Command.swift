/// A request's command: `get`, `put`, `close`, or one a later go command may add.
public struct Command: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    /// Look up an action's output.
    public static let get: Command = "get"
    /// Store an action's output; a body follows the request.
    public static let put: Command = "put"
    /// The go command is done: finish pending work, reply, exit.
    public static let close: Command = "close"
}
