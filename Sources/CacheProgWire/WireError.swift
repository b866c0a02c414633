/// Something in the byte stream that does not follow the protocol.
///
/// `requestID` is set when the offending request's ID was read, so a server can answer it with `Err`.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of mistake; compare with the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A line that is not the JSON object it should be.
        public static let malformedJSON = Code("malformed JSON")
        /// A field holding the wrong type or an impossible value.
        public static let invalidField = Code("invalid field")
        /// A body or `[]byte` field that is not standard base64.
        public static let invalidBase64 = Code("invalid base64")
        /// A body whose decoded length differs from `BodySize`.
        public static let bodySizeMismatch = Code("body size mismatch")
        /// A `BodySize` above the decoder's limit, or negative.
        public static let bodyTooLarge = Code("body too large")
        /// A message line longer than the decoder's limit.
        public static let lineTooLong = Code("line too long")
        /// Input that is neither a message nor blank space.
        public static let unexpectedInput = Code("unexpected input")
        /// The stream ended inside a message.
        public static let truncatedStream = Code("truncated stream")
    }

    /// The kind of mistake.
    public let code: Code
    /// A sentence for logs and `Err` replies.
    public let message: String
    /// The ID of the request it belongs to, when that much was read.
    public let requestID: Int64?

    public init(_ code: Code, _ message: String, requestID: Int64? = nil) {
        self.code = code
        self.message = message
        self.requestID = requestID
    }

    public var description: String { "\(code): \(message)" }
}
