/// A message from the go command to a cache program, without its body.
///
/// Byte fields hold whatever the peer sent; the server checks their lengths (`ActionID(bytes:)`).
public struct Request: Hashable, Sendable {
    /// Unique per process; the reply must carry it.
    public var id: Int64
    /// What to do.
    public var command: Command
    /// The cache key, for `get` and `put`.
    public var actionID: [UInt8]?
    /// The body's SHA-256, for `put`.
    public var outputID: [UInt8]?
    /// Bytes in the body that follows a `put`; 0 means no body line follows.
    public var bodySize: Int64

    public init(id: Int64, command: Command, actionID: [UInt8]? = nil, outputID: [UInt8]? = nil, bodySize: Int64 = 0) {
        self.id = id
        self.command = command
        self.actionID = actionID
        self.outputID = outputID
        self.bodySize = bodySize
    }
}

extension Request {
    /// Parses one request object (a line without its newline).
    ///
    /// Unknown fields are ignored; names match case-insensitively, as in Go.
    public static func parse(_ line: UnsafeBufferPointer<UInt8>) throws(WireError) -> Request {
        var id: Int64?
        var command: Command?
        var actionID: [UInt8]?
        var outputID: [UInt8]?
        var bodySize: Int64 = 0
        var reader = JSONReader(line)
        do {
            try reader.readObject { reader, key in
                if fieldName(key, is: "ID") {
                    id = try reader.readInt64()
                } else if fieldName(key, is: "Command") {
                    command = reader.readNull() ? nil : Command(rawValue: try reader.readString())
                } else if fieldName(key, is: "ActionID") {
                    actionID = try readBytesField(&reader, "ActionID")
                } else if fieldName(key, is: "OutputID") {
                    outputID = try readBytesField(&reader, "OutputID")
                } else if fieldName(key, is: "BodySize") {
                    bodySize = try reader.readInt64()
                } else {
                    try reader.skipValue()
                }
            }
            try reader.expectEnd()
        } catch let failure as JSONReader.Failure {
            throw WireError(.malformedJSON, "request: \(failure.message)", requestID: id)
        } catch let error as WireError {
            throw WireError(error.code, error.message, requestID: id)
        } catch {
            throw WireError(.malformedJSON, "request: \(error)", requestID: id)
        }
        guard let id else { throw WireError(.invalidField, "request has no ID") }
        guard let command, !command.rawValue.isEmpty else {
            throw WireError(.invalidField, "request has no Command", requestID: id)
        }
        return Request(id: id, command: command, actionID: actionID, outputID: outputID, bodySize: bodySize)
    }

    /// Encodes the request as the go command does: the object, a newline, and an extra newline.
    /// The body, if any, goes after it (`BodyEncoder`).
    public func encoded() -> [UInt8] {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("ID", id)
        writer.field("Command", command.rawValue)
        if let actionID { writer.field("ActionID", base64: actionID) }
        if let outputID { writer.field("OutputID", base64: outputID) }
        if bodySize != 0 { writer.field("BodySize", bodySize) }
        writer.endObject()
        writer.bytes.append(contentsOf: [0x0A, 0x0A])
        return writer.bytes
    }
}

/// Reads a `[]byte` field: a base64 string, or null.
func readBytesField(_ reader: inout JSONReader, _ name: String) throws -> [UInt8]? {
    if reader.readNull() { return nil }
    let text = try reader.readStringBytes()
    guard let bytes = Base64.decode(text) else {
        throw WireError(.invalidBase64, "\(name) is not base64")
    }
    return bytes
}
