import CCurl
import ChunkStore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// HTTP requests for the remote tier, through libcurl, which is loaded on the first request:
/// linking it (or FoundationNetworking, which links it) made every run of chunkcache load some
/// thirty libraries before it could answer the go command, and most runs use no remote cache.
/// Each request blocks one of its own threads, never one of Swift's cooperative threads; handles are
/// reused, so connections stay open between requests.
final class HTTPClient: Sendable {
    /// A reply: the status code, the headers (names lower-cased) and the body.
    struct Reply {
        var status: Int
        var headers: [String: String] = [:]
        var body: [UInt8]
    }

    /// A request that got no reply (no libcurl, refused connection, timeout, a body too large).
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// A libcurl easy handle.
    ///
    /// `@unchecked Sendable`: libcurl allows a handle to be used by one thread at a time, and a
    /// handle is either in the idle list (under its mutex) or held by the one request using it.
    private struct Handle: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
    }

    private let idle = Mutex<[Handle]>([])
    private let timeoutMilliseconds: Int
    private let maxReplyBytes: Int

    init(timeoutSeconds: Double, maxReplyBytes: Int = 256 << 20) {
        timeoutMilliseconds = Int(timeoutSeconds * 1000)
        self.maxReplyBytes = maxReplyBytes
    }

    deinit {
        idle.withLock { $0.forEach { ccurl_handle_free($0.pointer) } }
    }

    /// Sends `method` (GET, HEAD or PUT with `body`) to `url` with `headers` ("Name: value").
    func perform(_ method: String, url: String, headers: [String], body: [UInt8]? = nil) async -> Result<Reply, Failure> {
        await withTaskExecutorPreference(Self.threads) { self.performBlocking(method, url: url, headers: headers, body: body) }
    }

    /// Threads of its own for the blocking requests: at most 80 in flight (uploads, prefetch and
    /// gets share them; at 20 ms a round trip that is 4,000 requests a second). Not dispatch's global queue: on
    /// Linux it runs about one blocking job per core, so requests waited for each other and a
    /// remote hit cost its round trips one after another (measured: served-from-remote time
    /// grew with the round-trip time as if one request were in flight).
    static let threads = StoreExecutor(maxThreads: 80)

    private func performBlocking(_ method: String, url: String, headers: [String], body: [UInt8]?) -> Result<Reply, Failure> {
        var message = [CChar](repeating: 0, count: 256)
        guard ccurl_load(&message, message.count) == 0 else { return .failure(Failure(description: Self.string(message))) }
        guard let handle = idle.withLock({ $0.popLast() }) ?? ccurl_handle_new().map(Handle.init) else {
            return .failure(Failure(description: "libcurl could not make a handle"))
        }
        var reply = ccurl_buffer(data: nil, length: 0, capacity: 0, limit: maxReplyBytes)
        var replyHeaders = ccurl_buffer(data: nil, length: 0, capacity: 0, limit: 64 << 10)
        defer {
            ccurl_buffer_free(&reply)
            ccurl_buffer_free(&replyHeaders)
        }
        var status = 0
        let cHeaders = headers.map { strdup($0) }
        defer { cHeaders.forEach { free($0) } }
        let result = cHeaders.map { $0.map { UnsafePointer<CChar>($0) } }.withUnsafeBufferPointer { headerList in
            (body ?? []).withUnsafeBytes { bodyBytes in
                ccurl_perform(handle.pointer, method, url, headerList.baseAddress, Int32(headerList.count),
                              bodyBytes.baseAddress, bodyBytes.count, timeoutMilliseconds, &reply, &replyHeaders, &status, &message)
            }
        }
        idle.withLock { $0.append(handle) }
        guard result == 0 else { return .failure(Failure(description: Self.string(message))) }
        let bytes = reply.data.map { Array(UnsafeBufferPointer(start: $0, count: reply.length)) } ?? []
        let headerText = replyHeaders.data.map { Array(UnsafeBufferPointer(start: $0, count: replyHeaders.length)) } ?? []
        return .success(Reply(status: status, headers: Self.headers(String(decoding: headerText, as: UTF8.self)), body: bytes))
    }

    /// The last response's header lines as a dictionary (a status line starts a new response).
    static func headers(_ text: String) -> [String: String] {
        var headers: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            if line.hasPrefix("HTTP/") {
                headers.removeAll()
            } else if let colon = line.firstIndex(of: ":") {
                let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
                headers[line[..<colon].lowercased()] = String(value)
            }
        }
        return headers
    }

    private static func string(_ characters: [CChar]) -> String {
        String(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
