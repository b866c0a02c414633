import ChunkStore
import Digests
import FileIO
import Foundation
import Logging
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

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
        /// Longest wait for one request.
        public var timeout: TimeInterval

        public init(baseURL: String, headers: [String: String] = [:], readOnly: Bool = false, timeout: TimeInterval = 10) {
            self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
            self.headers = headers
            self.readOnly = readOnly
            self.timeout = timeout
        }
    }

    public let configuration: Configuration
    /// Where its errors and bytes are counted (the local store's counters).
    private let counters: StoreCounters
    private let session: URLSession
    private let logger: Logger
    private struct Health {
        var downUntil: Date = .distantPast
        var backoff: TimeInterval = 5
        var reported = false
    }
    private let health = Mutex(Health())

    public init(configuration: Configuration, counters: StoreCounters, logger: Logger) {
        self.configuration = configuration
        self.counters = counters
        self.logger = logger
        let sessionConfiguration = URLSessionConfiguration.ephemeral
        sessionConfiguration.timeoutIntervalForRequest = configuration.timeout
        sessionConfiguration.httpMaximumConnectionsPerHost = 8
        session = URLSession(configuration: sessionConfiguration)
    }

    private enum Outcome {
        case ok(Data)
        case notFound
        case failed
    }

    private var isUp: Bool { health.withLock { Date() >= $0.downUntil } }

    private func markDown(_ reason: String) {
        counters.remoteErrors.add()
        let (firstTime, wasUp, backoff) = health.withLock { health -> (Bool, Bool, TimeInterval) in
            let wasUp = Date() >= health.downUntil
            let firstTime = !health.reported
            health.reported = true
            if wasUp {
                health.downUntil = Date().addingTimeInterval(health.backoff)
                health.backoff = min(health.backoff * 2, 300)
            }
            return (firstTime, wasUp, health.backoff)
        }
        // Said once per run on stderr; later outages only at debug level (and in the counters).
        if firstTime {
            logger.warning("remote cache \(configuration.baseURL) unusable (\(reason)); working locally, retrying in \(Int(backoff / 2)) s")
        } else if wasUp {
            logger.debug("remote cache still unusable (\(reason)); next retry in \(Int(backoff / 2)) s")
        }
    }

    private func markUp() { health.withLock { $0.backoff = 5 } }

    private func request(_ method: String, _ path: String, body: Data? = nil) async -> Outcome {
        guard isUp, let url = URL(string: configuration.baseURL + "/" + path) else { return .failed }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = configuration.timeout
        for (name, value) in configuration.headers { request.setValue(value, forHTTPHeaderField: name) }
        do {
            let (data, response): (Data, URLResponse)
            if let body {
                (data, response) = try await session.upload(for: request, from: body)
            } else {
                (data, response) = try await session.data(for: request)
            }
            guard let http = response as? HTTPURLResponse else {
                markDown("not an HTTP response")
                return .failed
            }
            switch http.statusCode {
            case 200..<300:
                markUp()
                return .ok(data)
            case 404:
                return .notFound
            default:
                markDown("HTTP \(http.statusCode) for \(method) \(path)")
                return .failed
            }
        } catch {
            markDown("\(error.localizedDescription)")
            return .failed
        }
    }

    /// The manifest stored under `key`, or nil.
    public func manifest(for key: SHA256Digest) async -> [UInt8]? {
        guard case .ok(let data) = await request("GET", "ac/" + key.hex) else { return nil }
        counters.remoteBytesDownloaded.add(Int64(data.count))
        return [UInt8](data)
    }

    /// The chunk with this hash, checked against it; nil if missing, unreachable or wrong.
    public func chunk(_ digest: SHA256Digest, size: Int) async -> [UInt8]? {
        guard case .ok(let data) = await request("GET", "cas/" + digest.hex) else { return nil }
        counters.remoteBytesDownloaded.add(Int64(data.count))
        let bytes = [UInt8](data)
        guard bytes.count == size, SHA256.hash(bytes) == digest else {
            markDown("chunk \(digest.hex.prefix(16)) came back wrong (\(bytes.count) bytes)")
            return nil
        }
        return bytes
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
                guard case .ok = await request("PUT", "cas/" + chunk.digest.hex, body: Data(bytes)) else { return }
                counters.remoteBytesUploaded.add(Int64(chunk.size))
            }
        }
        guard case .ok = await request("PUT", "ac/" + key.hex, body: Data(manifest)) else { return }
        counters.remoteBytesUploaded.add(Int64(manifest.count))
    }
}
