/// One kind of server the remote tier can talk to: how a request for a path in the tier's
/// layout (`cas/<sha256>`, `ac/<sha256>`) becomes a URL and headers, and how its error replies
/// read. The layout itself, the checks and the health of the remote are `RemoteTier`'s.
protocol RemoteBackend: Sendable {
    /// Where the tier is, for messages (`http://host/cache`, `s3://bucket/prefix`).
    var location: String { get }

    /// The URL and header lines ("Name: value") to send `method` on `path` with `headers` and
    /// `body`.
    func prepare(_ method: String, _ path: String, headers: [(name: String, value: String)], body: [UInt8]) -> (url: String, headers: [String])

    /// Why `reply` (not 2xx) is an error rather than a missing entry, or nil for a plain 404.
    func failure(_ reply: HTTPClient.Reply, method: String, path: String) -> String?
}

/// An HTTP cache server in the layout Bazel's HTTP caching protocol defines: bazel-remote, or
/// a plain WebDAV server such as nginx with `dav_methods PUT`, with optional fixed headers
/// (authentication).
struct HTTPCacheBackend: RemoteBackend {
    /// The server's base URL, without a trailing slash.
    let baseURL: String
    let headers: [String]

    init(baseURL: String, headers: [String: String]) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.headers = headers.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
    }

    var location: String { baseURL }

    func prepare(_ method: String, _ path: String, headers extra: [(name: String, value: String)], body: [UInt8]) -> (url: String, headers: [String]) {
        (baseURL + "/" + path, headers + extra.map { "\($0.name): \($0.value)" })
    }

    func failure(_ reply: HTTPClient.Reply, method: String, path: String) -> String? {
        reply.status == 404 ? nil : "HTTP \(reply.status) for \(method) \(path)"
    }
}
