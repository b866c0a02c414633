import ChunkStore
import Digests
import FileIO
import Logging
import Synchronization

/// A shared second tier: an HTTP cache server as bazel-remote and plain WebDAV servers (nginx
/// with `dav_methods PUT`) speak it: `GET`/`PUT`/`HEAD` of `BASE/cas/<sha256>` for chunks (the
/// plain chunk bytes, so the key is the hash of the content) and `BASE/ac/<key>` for manifests.
///
/// It never fails a build: any error (refused connection, timeout, 5xx, a short or wrong body)
/// counts as a miss, is logged once, and turns the remote off for a while (backing off from 5 s
/// to 5 min), during which every call returns at once. Downloads are checked by the caller
/// against their hashes before anything is stored.
public final class HTTPRemote: Sendable {
    public struct Configuration: Sendable {
        /// The server's base URL, without a trailing slash.
        public var baseURL: String
        /// Extra headers on every request (authentication).
        public var headers: [String: String]
        /// Read but never write (untrusted jobs, such as pull requests).
        public var readOnly: Bool
        /// Longest wait for one request, in seconds.
        public var timeout: Double

        public init(baseURL: String, headers: [String: String] = [:], readOnly: Bool = false, timeout: Double = 10) {
            self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
            self.headers = headers
            self.readOnly = readOnly
            self.timeout = timeout
        }
    }

    public let configuration: Configuration
    /// Where its errors and bytes are counted (the serving run's counters).
    private let counters: CacheCounters
    private let client: HTTPClient
    private let logger: Logger
    private struct Health {
        /// Wall-clock nanoseconds until which the remote is not tried.
        var downUntil: Int64 = 0
        /// Seconds to stay away after the next failure.
        var backoff: Int64 = 5
        var reported = false
    }
    private let health = Mutex(Health())

    init(configuration: Configuration, counters: CacheCounters, logger: Logger) {
        self.configuration = configuration
        self.counters = counters
        self.logger = logger
        client = HTTPClient(timeoutSeconds: configuration.timeout)
    }

    private enum Outcome {
        case ok([UInt8])
        case notFound
        case failed
    }

    private var isUp: Bool { health.withLock { WallClock.nanoseconds() >= $0.downUntil } }

    private func markDown(_ reason: String) {
        counters.remoteErrors.add()
        let (firstTime, wasUp, backoff) = health.withLock { health -> (Bool, Bool, Int64) in
            let now = WallClock.nanoseconds()
            let wasUp = now >= health.downUntil
            let firstTime = !health.reported
            health.reported = true
            if wasUp {
                health.downUntil = now + health.backoff * 1_000_000_000
                health.backoff = min(health.backoff * 2, 300)
            }
            return (firstTime, wasUp, health.backoff)
        }
        // Said once per run on stderr; later outages only at debug level (and in the counters).
        if firstTime {
            logger.warning("remote cache \(configuration.baseURL) unusable (\(reason)); working locally, retrying in \(backoff / 2) s")
        } else if wasUp {
            logger.debug("remote cache still unusable (\(reason)); next retry in \(backoff / 2) s")
        }
    }

    private func markUp() { health.withLock { $0.backoff = 5 } }

    private func request(_ method: String, _ path: String, body: [UInt8]? = nil) async -> Outcome {
        guard isUp else { return .failed }
        let headers = configuration.headers.map { "\($0.key): \($0.value)" }
        switch await client.perform(method, url: configuration.baseURL + "/" + path, headers: headers, body: body) {
        case .failure(let failure):
            markDown(failure.description)
            return .failed
        case .success(let reply):
            switch reply.status {
            case 200..<300:
                markUp()
                return .ok(reply.body)
            case 404:
                return .notFound
            default:
                markDown("HTTP \(reply.status) for \(method) \(path)")
                return .failed
            }
        }
    }

    /// The manifest stored under `key`, or nil.
    public func manifest(for key: SHA256Digest) async -> [UInt8]? {
        guard case .ok(let data) = await request("GET", "ac/" + key.hex) else { return nil }
        counters.remoteBytesDownloaded.add(Int64(data.count))
        return data
    }

    /// The chunk with this hash, checked against it; nil if missing, unreachable or wrong.
    public func chunk(_ digest: SHA256Digest, size: Int) async -> [UInt8]? {
        guard case .ok(let data) = await request("GET", "cas/" + digest.hex) else { return nil }
        counters.remoteBytesDownloaded.add(Int64(data.count))
        guard data.count == size, SHA256.hash(data) == digest else {
            markDown("chunk \(digest.hex.prefix(16)) came back wrong (\(data.count) bytes)")
            return nil
        }
        return data
    }

    /// Uploads the chunks the server lacks (asking with HEAD first), then the manifest. The
    /// chunks are read from `body`, the output's plain file, by their sizes in order.
    public func upload(key: SHA256Digest, manifest: [UInt8], chunks: [(digest: SHA256Digest, size: Int)], body: String) async {
        guard !configuration.readOnly, isUp else { return }
        if !chunks.isEmpty {
            guard let descriptor = try? FileDescriptor.open(body, [.readOnly]) else { return }
            defer { descriptor.close() }
            var offset: Int64 = 0
            for chunk in chunks {
                defer { offset += Int64(chunk.size) }
                switch await request("HEAD", "cas/" + chunk.digest.hex) {
                case .ok: continue
                case .failed: return
                case .notFound: break
                }
                var bytes = [UInt8](repeating: 0, count: chunk.size)
                guard (try? bytes.withUnsafeMutableBytes({ try descriptor.readFully(into: $0, at: offset) })) == chunk.size,
                    SHA256.hash(bytes) == chunk.digest
                else { return }  // the file changed under us: upload nothing that does not check out
                guard case .ok = await request("PUT", "cas/" + chunk.digest.hex, body: bytes) else { return }
                counters.remoteBytesUploaded.add(Int64(chunk.size))
            }
        }
        guard case .ok = await request("PUT", "ac/" + key.hex, body: manifest) else { return }
        counters.remoteBytesUploaded.add(Int64(manifest.count))
    }
}
