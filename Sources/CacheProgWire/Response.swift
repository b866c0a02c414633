/// A message from a cache program to the go command.
public struct Response: Hashable, Sendable {
    /// The request this answers; 0 for the capabilities message.
    public var id: Int64
    /// A failure; the go command treats a get that fails as a miss.
    public var err: String?
    /// In the first message only: the commands the program supports.
    public var knownCommands: [Command]
    /// For get: the action is not in the cache.
    public var miss: Bool
    /// For a get hit: the output ID stored with the body.
    public var outputID: [UInt8]?
    /// For a get hit: the body's size in bytes.
    public var size: Int64
    /// For a get hit: when the output was put (the go command's test cache expiry relies on it).
    public var time: Timestamp?
    /// For a get hit and a put: absolute path of a file holding exactly the body.
    public var diskPath: String?

    public init(
        id: Int64, err: String? = nil, knownCommands: [Command] = [], miss: Bool = false,
        outputID: [UInt8]? = nil, size: Int64 = 0, time: Timestamp? = nil, diskPath: String? = nil
    ) {
        self.id = id
        self.err = err
        self.knownCommands = knownCommands
        self.miss = miss
        self.outputID = outputID
        self.size = size
        self.time = time
        self.diskPath = diskPath
    }

    /// The capabilities message a program sends first.
    public static func capabilities(_ commands: [Command]) -> Response {
        Response(id: 0, knownCommands: commands)
    }

    /// One JSON line, empty fields omitted as Go's `omitempty` does.
    public func encoded() -> [UInt8] {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("ID", id)
        if let err, !err.isEmpty { writer.field("Err", err) }
        if !knownCommands.isEmpty { writer.field("KnownCommands", strings: knownCommands.map(\.rawValue)) }
        if miss { writer.field("Miss", true) }
        if let outputID, !outputID.isEmpty { writer.field("OutputID", base64: outputID) }
        if size != 0 { writer.field("Size", size) }
        if let time { writer.field("Time", time.rfc3339) }
        if let diskPath, !diskPath.isEmpty { writer.field("DiskPath", diskPath) }
        writer.endObject()
        writer.bytes.append(0x0A)
        return writer.bytes
    }

    /// Parses one response object (a line without its newline).
    public static func parse(_ line: UnsafeBufferPointer<UInt8>) throws(WireError) -> Response {
        var response = Response(id: -1)
        var sawID = false
        var reader = JSONReader(line)
        do {
            try reader.readObject { reader, key in
                if fieldName(key, is: "ID") {
                    response.id = try reader.readInt64()
                    sawID = true
                } else if fieldName(key, is: "Err") {
                    // Empty means absent, as with Go's omitempty: "" and a missing field are one.
                    response.err = reader.readNull() ? nil : try reader.readString()
                    if response.err?.isEmpty == true { response.err = nil }
                } else if fieldName(key, is: "KnownCommands") {
                    if !reader.readNull() {
                        try reader.readArray { reader in
                            response.knownCommands.append(Command(rawValue: try reader.readString()))
                        }
                    }
                } else if fieldName(key, is: "Miss") {
                    response.miss = try reader.readBool()
                } else if fieldName(key, is: "OutputID") {
                    response.outputID = try readBytesField(&reader, "OutputID")
                    if response.outputID?.isEmpty == true { response.outputID = nil }
                } else if fieldName(key, is: "Size") {
                    response.size = try reader.readInt64()
                } else if fieldName(key, is: "Time") {
                    if !reader.readNull() {
                        let text = try reader.readString()
                        guard let time = Timestamp(rfc3339: text) else {
                            throw WireError(.invalidField, "Time is not RFC 3339: \(text)")
                        }
                        response.time = time
                    }
                } else if fieldName(key, is: "DiskPath") {
                    response.diskPath = reader.readNull() ? nil : try reader.readString()
                    if response.diskPath?.isEmpty == true { response.diskPath = nil }
                } else {
                    try reader.skipValue()
                }
            }
            try reader.expectEnd()
        } catch let failure as JSONReader.Failure {
            throw WireError(.malformedJSON, "response: \(failure.message)", requestID: sawID ? response.id : nil)
        } catch let error as WireError {
            throw WireError(error.code, error.message, requestID: sawID ? response.id : nil)
        } catch {
            throw WireError(.malformedJSON, "response: \(error)")
        }
        guard sawID else { throw WireError(.invalidField, "response has no ID") }
        return response
    }
}
