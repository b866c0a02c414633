import ChunkStore
import Digests
import FileIO
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A shared second tier, in Bazel's HTTP cache layout, on any `RemoteBackend` (an HTTP cache
/// server such as bazel-remote or nginx WebDAV, or an S3 bucket):
/// - `cas/<sha256>`: chunks and manifests, by the hash of their plain bytes. They travel as zstd
///   frames where that saves (`Content-Encoding: zstd` and `X-Digest-SizeBytes`, as bazel-remote
///   takes them; a store of opaque bytes keeps the frame). Whatever comes back is checked: the
///   bytes as they are if they hash right, else decoded from zstd and checked again.
/// - `ac/<action key>`: an `ActionResult` naming the manifest (`chunkcache.manifest`), its
///   digest, and the manifest inline; for a small output (64 KiB at most), its chunks inline too
///   (`chunkcache.output`). Stock bazel-remote takes only that message there, and
///   serves an entry only while the blobs it names are in `cas/`, so the manifest is stored
///   there too. Entries of the first layout (the manifest itself under `ac/`) are still read.
///
/// It never fails a build: any error (refused connection, timeout, 5xx, a short or wrong body)
/// counts as a miss, is logged once, and turns the remote off for a while (backing off from 5 s
/// to 5 min), during which every call returns at once.
public final class RemoteTier: Sendable {
    public struct Configuration: Sendable {
        /// `http(s)://…` (an HTTP cache) or `s3://BUCKET[/PREFIX]`.
        public var url: String
        /// Extra headers on every request to an HTTP cache (authentication).
        public var headers: [String: String]
        /// Read but never write (untrusted jobs, such as pull requests).
        public var readOnly: Bool
        /// Longest wait for one request, in seconds.
        public var timeout: Double
        /// Requests in flight at once for one output's chunks (downloads and uploads).
        public var parallelism: Int
        /// Where S3 settings are read (`AWS_REGION`, `AWS_PROFILE`, …): the process's environment,
        /// and the shared files under `home` (`~/.aws/config`, `~/.aws/credentials`).
        public var environment: [String: String]
        public var home: String?

        public init(
            url: String, headers: [String: String] = [:], readOnly: Bool = false, timeout: Double = 10, parallelism: Int = 16,
            environment: [String: String] = RemoteTier.processEnvironment(), home: String? = nil
        ) {
            self.url = url
            self.headers = headers
            self.readOnly = readOnly
            self.timeout = timeout
            self.parallelism = max(1, parallelism)
            self.environment = environment
            self.home = home ?? environment["HOME"]
        }
    }

    /// This process's environment variables.
    public static func processEnvironment() -> [String: String] {
        var variables: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") { variables[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
            entry += 1
        }
        return variables
    }

    /// A configuration that cannot be used (a malformed URL or S3 setting).
    public struct InvalidConfiguration: Error, CustomStringConvertible {
        public let description: String
    }

    /// Where an `ActionResult` names the manifest.
    static let manifestPath = "chunkcache.manifest"
    /// Where it names each chunk of a small output, carried inline: a hit on one then costs one
    /// round trip, not two (outputs too small to be chunked are in the manifest already).
    static let outputPath = "chunkcache.output"
    /// The largest output carried inline.
    static let inlineLimit = 64 << 10

    public let configuration: Configuration
    let backend: any RemoteBackend
    /// Where its errors and bytes are counted (the serving run's counters).
    private let counters: CacheCounters
    private let client: HTTPClient
    private let logger: Logger
    /// zstd at a fast level, for chunks on their way out.
    private let compressor = Compressor(codec: .zstd, level: 3)
    private struct Health {
        /// Wall-clock nanoseconds until which the remote is not tried.
        var downUntil: Int64 = 0
        /// Seconds to stay away after the next failure.
        var backoff: Int64 = 5
        var reported = false
    }
    private let health = Mutex(Health())

    init(configuration: Configuration, counters: CacheCounters, logger: Logger) throws(InvalidConfiguration) {
        self.configuration = configuration
        self.counters = counters
        self.logger = logger
        backend = try Self.makeBackend(configuration)
        client = HTTPClient(timeoutSeconds: configuration.timeout)
    }

    private static func makeBackend(_ configuration: Configuration) throws(InvalidConfiguration) -> any RemoteBackend {
        let url = configuration.url
        if url.hasPrefix("s3://") {
            do {
                return S3Backend(settings: try S3Settings.resolve(url: url, environment: configuration.environment, home: configuration.home))
            } catch {
                throw InvalidConfiguration(description: error.description)
            }
        }
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw InvalidConfiguration(description: "remote \(url.debugDescription) is neither http(s):// nor s3://")
        }
        return HTTPCacheBackend(baseURL: url, headers: configuration.headers)
    }

    private enum Outcome {
        case ok(HTTPClient.Reply)
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
            logger.warning("remote cache \(backend.location) unusable (\(reason)); working locally, retrying in \(backoff / 2) s")
        } else if wasUp {
            logger.debug("remote cache still unusable (\(reason)); next retry in \(backoff / 2) s")
        }
    }

    private func markUp() { health.withLock { $0.backoff = 5 } }

    private func request(_ method: String, _ path: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil) async -> Outcome {
        guard isUp else { return .failed }
        let (url, lines) = backend.prepare(method, path, headers: headers, body: body ?? [])
        switch await client.perform(method, url: url, headers: lines, body: body) {
        case .failure(let failure):
            markDown(failure.description)
            return .failed
        case .success(let reply):
            if (200..<300).contains(reply.status) {
                markUp()
                return .ok(reply)
            }
            guard let reason = backend.failure(reply, method: method, path: path) else { return .notFound }
            markDown(reason)
            return .failed
        }
    }

    /// An entry as read: the manifest's bytes (checked against their digest, not yet decoded),
    /// and the blobs it carried inline, each checked against its digest.
    public struct Entry: Sendable {
        public var manifest: [UInt8]
        public var inline: [SHA256Digest: [UInt8]]
    }

    /// The entry stored under `key`, or nil.
    public func entry(for key: SHA256Digest) async -> Entry? {
        guard let (body, result) = await actionResult(for: key, naming: Self.manifestPath) else { return nil }
        if body.starts(with: Manifest.magic) { return Entry(manifest: body, inline: [:]) }  // the first layout
        var inline: [SHA256Digest: [UInt8]] = [:]
        for output in result?.outputFiles ?? [] where output.path == Self.outputPath {
            if let contents = output.contents, let digest = SHA256Digest(hex: output.hash), SHA256.hash(contents) == digest {
                inline[digest] = contents
            }
        }
        guard let result, let manifest = await namedBlob(Self.manifestPath, in: result) else { return nil }
        return Entry(manifest: manifest, inline: inline)
    }

    /// The `ActionResult` under `ac/<key>` (nil with the raw body for an entry of the first
    /// layout, a manifest); nil if missing, or if it names no `path` (said once, and the remote
    /// left alone for a while, unless it was only `hint`: not ours).
    private func actionResult(for key: SHA256Digest, naming path: String, hint: Bool = false) async -> (body: [UInt8], result: ActionResult?)? {
        guard case .ok(let reply) = await request("GET", "ac/" + key.hex) else { return nil }
        counters.remoteBytesDownloaded.add(Int64(reply.body.count))
        if reply.body.starts(with: Manifest.magic) { return (reply.body, nil) }
        guard let result = try? ActionResult(decoding: reply.body), result.outputFiles.contains(where: { $0.path == path }) else {
            if hint {
                logger.debug("remote ac/\(key.hex.prefix(16)) does not read as \(path); not used")
            } else {
                markDown("ac/\(key.hex.prefix(16)) is not an entry of ours")
            }
            return nil
        }
        return (reply.body, result)
    }

    /// The blob `result` names at `path`: inline if it carries it and it checks out, else
    /// fetched from `cas/` (up to 1 GiB); nil if missing or wrong.
    private func namedBlob(_ path: String, in result: ActionResult) async -> [UInt8]? {
        guard let file = result.outputFiles.first(where: { $0.path == path }), let digest = SHA256Digest(hex: file.hash),
            file.size >= 0, file.size <= 1 << 30
        else { return nil }
        if let contents = file.contents, contents.count == file.size, SHA256.hash(contents) == digest { return contents }
        return await blob(digest, size: Int(file.size))
    }

    /// Stores `blob` in `cas/`, then under `ac/<key>` an `ActionResult` naming it at `path`.
    private func putEntry(_ key: SHA256Digest, _ blob: [UInt8], at path: String) async {
        let digest = SHA256.hash(blob)
        guard await putBlob(digest, blob) else { return }
        await putActionResult(key, naming: blob, digest: digest, at: path)
    }

    /// Stores under `ac/<key>` an `ActionResult` naming `blob` (already in `cas/`) at `path`, and
    /// carrying it inline, with `extra` files after it.
    private func putActionResult(_ key: SHA256Digest, naming blob: [UInt8], digest: SHA256Digest, at path: String, extra: [ActionResult.OutputFile] = []) async {
        let files = [ActionResult.OutputFile(path: path, hash: digest.hex, size: Int64(blob.count), contents: blob)] + extra
        let entry = ActionResult(outputFiles: files).encoded()
        guard case .ok = await request("PUT", "ac/" + key.hex, body: entry) else { return }
        counters.remoteBytesUploaded.add(Int64(entry.count))
    }

    /// Where the order of the last run in `context` is kept: an entry like an output's, under a
    /// key no action can have (a hash of a text of ours, not of an action).
    static func orderKey(context: UInt64) -> SHA256Digest {
        SHA256.hash(Array("chunkcache-order-1 \(context)".utf8))
    }

    /// The action keys the last run in `context` asked for, in its order (see `RemoteOrder`);
    /// nil if none is kept or it does not read.
    public func order(context: UInt64) async -> [SHA256Digest]? {
        guard let (_, result) = await actionResult(for: Self.orderKey(context: context), naming: RemoteOrder.path, hint: true), let result,
            let bytes = await namedBlob(RemoteOrder.path, in: result)
        else { return nil }
        return RemoteOrder.decode(bytes)
    }

    /// Keeps `keys` as the order of the last run in `context`, for an empty store's prefetch.
    public func record(order keys: [SHA256Digest], context: UInt64) async {
        guard !configuration.readOnly, isUp, !keys.isEmpty else { return }
        await putEntry(Self.orderKey(context: context), RemoteOrder.encode(keys), at: RemoteOrder.path)
    }

    /// The blob with this hash, checked against it; nil if missing, unreachable or wrong.
    public func blob(_ digest: SHA256Digest, size: Int) async -> [UInt8]? {
        guard case .ok(let reply) = await request("GET", "cas/" + digest.hex, headers: [("Accept-Encoding", "zstd")]) else { return nil }
        counters.remoteBytesDownloaded.add(Int64(reply.body.count))
        if let plain = plainBlob(reply.body, digest: digest, size: size) { return plain }
        markDown("blob \(digest.hex.prefix(16)) came back wrong (\(reply.body.count) bytes)")
        return nil
    }

    /// `body` as the blob's plain bytes: as it is if it checks out, else decoded from zstd.
    func plainBlob(_ body: [UInt8], digest: SHA256Digest, size: Int) -> [UInt8]? {
        if body.count == size, SHA256.hash(body) == digest { return body }
        guard body.starts(with: [0x28, 0xb5, 0x2f, 0xfd]) else { return nil }  // a zstd frame's magic
        var plain = [UInt8](repeating: 0, count: size)
        let decoded = body.withUnsafeBytes { input in
            plain.withUnsafeMutableBytes { (try? compressor.decompress(input, codec: .zstd, into: $0)) != nil }
        }
        return decoded && SHA256.hash(plain) == digest ? plain : nil
    }

    /// The blobs in `list` (each once), fetched `parallelism` at a time; nil if any is missing
    /// or wrong (the output is then a miss, and what was fetched is not kept).
    public func blobs(_ list: [(digest: SHA256Digest, size: Int)]) async -> [SHA256Digest: [UInt8]]? {
        var unique: [(digest: SHA256Digest, size: Int)] = []
        var seen = Set<SHA256Digest>()
        for item in list where seen.insert(item.digest).inserted { unique.append(item) }
        let supplied = Mutex<[SHA256Digest: [UInt8]]>([:])
        let complete = await allSucceed(unique) { item in
            guard let data = await self.blob(item.digest, size: item.size) else { return false }
            supplied.withLock { $0[item.digest] = data }
            return true
        }
        return complete ? supplied.withLock { $0 } : nil
    }

    /// Runs `work` on every item, `configuration.parallelism` at a time; at the first that
    /// fails, starts no more and returns false.
    private func allSucceed<Item: Sendable>(_ items: [Item], _ work: @escaping @Sendable (Item) async -> Bool) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            var next = 0
            func startNext() {
                let item = items[next]
                next += 1
                group.addTask { await work(item) }
            }
            while next < min(items.count, configuration.parallelism) { startNext() }
            while let ok = await group.next() {
                guard ok else {
                    group.cancelAll()
                    return false
                }
                if next < items.count { startNext() }
            }
            return true
        }
    }

    /// Stores `bytes` under `cas/<digest>`, compressed if that saves.
    private func putBlob(_ digest: SHA256Digest, _ bytes: [UInt8]) async -> Bool {
        var frame: [UInt8] = []
        let codec = bytes.withUnsafeBytes { compressor.compress($0, into: &frame) }
        let outcome: Outcome
        if codec == .zstd {
            outcome = await request("PUT", "cas/" + digest.hex, headers: [("Content-Encoding", "zstd"), ("X-Digest-SizeBytes", String(bytes.count))], body: frame)
        } else {
            outcome = await request("PUT", "cas/" + digest.hex, body: bytes)
        }
        guard case .ok = outcome else { return false }
        counters.remoteBytesUploaded.add(Int64(codec == .zstd ? frame.count : bytes.count))
        return true
    }

    /// Uploads the chunks the remote lacks (asking with HEAD first, `parallelism` at a time) and,
    /// at the same time, the manifest into `cas/`; then the entry into `ac/`, once every blob it
    /// names is there. The chunks are read from `body`, the output's plain file, by their sizes
    /// in order; nothing that does not check out is sent.
    public func upload(key: SHA256Digest, manifest: [UInt8], chunks: [(digest: SHA256Digest, size: Int)], body: String) async {
        guard !configuration.readOnly, isUp else { return }
        let manifestDigest = SHA256.hash(manifest)
        async let manifestSent = putBlob(manifestDigest, manifest)
        let chunksSent = await uploadChunks(chunks, from: body)
        guard await manifestSent, chunksSent else { return }
        // A small output's chunks go inline too (they are in cas/ as well, as bazel-remote
        // requires of every blob an entry names).
        var files: [ActionResult.OutputFile] = []
        let total = chunks.reduce(0) { $0 + $1.size }
        if !chunks.isEmpty, total <= Self.inlineLimit, let bytes = try? FileSystem.readFile(body), bytes.count == total {
            var offset = 0
            var seen = Set<SHA256Digest>()
            for chunk in chunks {
                defer { offset += chunk.size }
                let piece = Array(bytes[offset..<offset + chunk.size])
                guard seen.insert(chunk.digest).inserted, SHA256.hash(piece) == chunk.digest else { continue }
                files.append(.init(path: Self.outputPath, hash: chunk.digest.hex, size: Int64(chunk.size), contents: piece))
            }
        }
        await putActionResult(key, naming: manifest, digest: manifestDigest, at: Self.manifestPath, extra: files)
    }

    /// Uploads those of `chunks` the remote lacks, read from `body` and checked; false if any
    /// could not be.
    private func uploadChunks(_ chunks: [(digest: SHA256Digest, size: Int)], from body: String) async -> Bool {
        guard !chunks.isEmpty else { return true }
        guard let descriptor = try? FileDescriptor.open(body, [.readOnly]) else { return false }
        defer { descriptor.close() }
        var offsets: [(digest: SHA256Digest, size: Int, offset: Int64)] = []
        var seen = Set<SHA256Digest>()
        var offset: Int64 = 0
        for chunk in chunks {
            if seen.insert(chunk.digest).inserted { offsets.append((chunk.digest, chunk.size, offset)) }
            offset += Int64(chunk.size)
        }
        return await allSucceed(offsets) { chunk in
            switch await self.request("HEAD", "cas/" + chunk.digest.hex) {
            case .ok: return true
            case .failed: return false
            case .notFound: break
            }
            var bytes = [UInt8](repeating: 0, count: chunk.size)
            // The file changed under us: upload nothing that does not check out.
            guard (try? bytes.withUnsafeMutableBytes({ try descriptor.readFully(into: $0, at: chunk.offset) })) == chunk.size,
                SHA256.hash(bytes) == chunk.digest
            else { return false }
            return await self.putBlob(chunk.digest, bytes)
        }
    }
}

/// The order of a run's gets as the remote keeps it: whole action keys (the remote is asked by
/// key), each once, at most `RecordedOrders.maxKeys`. Only a hint: every entry it names is
/// fetched and checked as a get's would be, so a wrong or hostile order costs fetches, never an
/// output.
enum RemoteOrder {
    /// Where its `ActionResult` names it.
    static let path = "chunkcache.order"
    static let magic: [UInt8] = Array("chunkcache-remote-order-1\n".utf8)

    static func encode(_ keys: [SHA256Digest]) -> [UInt8] {
        var out = magic
        out.reserveCapacity(magic.count + 4 + keys.count * SHA256.byteCount)
        withUnsafeBytes(of: UInt32(keys.count).littleEndian) { out.append(contentsOf: $0) }
        for key in keys { out.append(contentsOf: key.bytes) }
        return out
    }

    /// The keys, or nil if `bytes` is not an order (wrong magic, wrong length, too many keys).
    static func decode(_ bytes: [UInt8]) -> [SHA256Digest]? {
        guard bytes.starts(with: magic), bytes.count >= magic.count + 4 else { return nil }
        return bytes.withUnsafeBytes { raw -> [SHA256Digest]? in
            let count = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: magic.count, as: UInt32.self)))
            let start = magic.count + 4
            guard count <= RecordedOrders.maxKeys, raw.count == start + count * SHA256.byteCount else { return nil }
            return (0..<count).map { SHA256Digest(unsafeBytes: UnsafeRawBufferPointer(rebasing: raw[(start + $0 * SHA256.byteCount)...])) }
        }
    }
}
