@testable import ChunkCache
import ChunkStore
import Digests
import FileIO
import Foundation
import Logging
import Testing

/// The remote tier's pieces that need no server: the S3 signer against botocore's answers, how
/// S3 settings are found, and the action-cache entry that stock bazel-remote accepts. The tier
/// against real servers is in scripts/e2e-remote and scripts/e2e-s3.
@Suite("Remote tier")
struct RemoteTests {
    struct KnownAnswers: Decodable {
        struct Case: Decodable {
            struct Expected: Decodable {
                var url: String
                var headers: [String: String]
            }
            var name, endpoint, bucket, prefix, key, method, body, access, secret, region, time: String
            var path_style: Bool
            var headers: [[String]]
            var token: String?
            var expected: Expected
        }
        var cases: [Case]
    }

    static let knownAnswers: [KnownAnswers.Case] = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/sigv4-botocore.json")
        // A missing or unreadable fixture fails every case below (an empty list would pass).
        guard let data = try? Data(contentsOf: path), let answers = try? JSONDecoder().decode(KnownAnswers.self, from: data) else {
            return [KnownAnswers.Case(
                name: "fixture missing", endpoint: "", bucket: "", prefix: "", key: "", method: "", body: "", access: "", secret: "",
                region: "", time: "", path_style: true, headers: [], token: nil, expected: .init(url: "fixture unreadable", headers: [:]))]
        }
        return answers.cases
    }()

    @Test("signs every request exactly as botocore does", arguments: knownAnswers)
    func signsAsBotocore(_ answer: KnownAnswers.Case) throws {
        let credentials = SigV4.Credentials(accessKeyID: answer.access, secretAccessKey: answer.secret, sessionToken: answer.token)
        let settings = S3Settings(
            bucket: answer.bucket, prefix: answer.prefix, region: answer.region, endpoint: answer.endpoint, pathStyle: answer.path_style,
            credentials: credentials)
        let (url, host, path) = settings.url(of: answer.key)
        #expect(url == answer.expected.url, "\(answer.name)")
        let time = try #require(Timestamp(rfc3339: answer.time))
        let body = try #require(Hex.decode(answer.body))
        let headers = answer.headers.map { (name: $0[0], value: $0[1]) } + [(name: "Host", value: host)]
        let signed = SigV4(credentials: credentials, region: answer.region)
            .sign(method: answer.method, path: path, headers: headers, payloadHash: SHA256.hash(body).hex, time: time)
        #expect(Dictionary(uniqueKeysWithValues: signed.map { ($0.name, $0.value) }) == answer.expected.headers, "\(answer.name)")
    }

    @Test("the fixture holds the requests the signer must get right")
    func fixtureCoversTheCases() {
        let cases = Self.knownAnswers
        #expect(Set(cases.map(\.method)) == ["GET", "PUT", "HEAD"])
        #expect(cases.contains { $0.token != nil } && cases.contains { $0.token == nil })
        #expect(cases.contains { $0.prefix.utf8.contains { $0 >= 0x80 } && $0.prefix.contains(" ") })
    }

    // MARK: Finding S3 settings

    func files(config: String = "", credentials: String = "") throws -> String {
        let home = "/tmp/remote-test-" + FileSystem.uniqueSuffix()
        try FileSystem.createDirectories(home + "/.aws")
        try FileSystem.writeFileAtomically(home + "/.aws/config", Array(config.utf8))
        try FileSystem.writeFileAtomically(home + "/.aws/credentials", Array(credentials.utf8))
        return home
    }

    @Test("AWS: region from the environment, virtual-hosted addressing, credentials from the environment first")
    func awsDefaults() throws {
        let home = try files(credentials: "[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = x\n")
        defer { try? FileSystem.removeTree(home) }
        let settings = try S3Settings.resolve(
            url: "s3://team-cache/go/builds/", environment: ["AWS_REGION": "eu-west-3", "AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"],
            home: home)
        #expect(settings.bucket == "team-cache" && settings.prefix == "go/builds/")
        #expect(settings.endpoint == "https://s3.eu-west-3.amazonaws.com" && !settings.pathStyle)
        #expect(settings.credentials == .init(accessKeyID: "ENV", secretAccessKey: "s", sessionToken: "t"))
        #expect(settings.url(of: "cas/00").url == "https://team-cache.s3.eu-west-3.amazonaws.com/go/builds/cas/00")
    }

    @Test("a profile's credentials, region, endpoint and addressing style come from the shared files")
    func profileFromFiles() throws {
        let config = """
            [default]
            region = us-east-2
            [profile minio]
            region = local
            endpoint_url = http://127.0.0.1:9000/
            s3 =
              addressing_style = virtual
            """
        let credentials = "# team\n[minio]\naws_access_key_id = minio\naws_secret_access_key = minio123\n[default]\naws_access_key_id = D\naws_secret_access_key = d\n"
        let home = try files(config: config, credentials: credentials)
        defer { try? FileSystem.removeTree(home) }
        let settings = try S3Settings.resolve(url: "s3://builds", environment: ["AWS_PROFILE": "minio"], home: home)
        #expect(settings.credentials == .init(accessKeyID: "minio", secretAccessKey: "minio123", sessionToken: nil))
        #expect(settings.endpoint == "http://127.0.0.1:9000" && !settings.pathStyle && settings.prefix == "")
        #expect(settings.url(of: "ac/1").url == "http://builds.127.0.0.1:9000/ac/1")
        let plain = try S3Settings.resolve(url: "s3://builds", environment: [:], home: home)
        #expect(plain.region == "us-east-2" && plain.credentials?.accessKeyID == "D")
    }

    @Test("an endpoint of one's own means path-style; AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL; it can be ignored")
    func endpoints() throws {
        let environment = ["AWS_ENDPOINT_URL": "http://general:1", "AWS_ENDPOINT_URL_S3": "http://s3only:2"]
        let settings = try S3Settings.resolve(url: "s3://bucket/p", environment: environment, home: nil)
        #expect(settings.endpoint == "http://s3only:2" && settings.pathStyle && settings.credentials == nil)
        #expect(settings.url(of: "cas/ab").url == "http://s3only:2/bucket/p/cas/ab")
        let ignored = try S3Settings.resolve(url: "s3://bucket", environment: environment.merging(["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"]) { $1 }, home: nil)
        #expect(ignored.endpoint == "https://s3.us-east-1.amazonaws.com")
        let dotted = try S3Settings.resolve(url: "s3://my.bucket", environment: [:], home: nil)
        #expect(dotted.pathStyle, "a dotted name does not fit AWS's wildcard certificate")
    }

    @Test("a malformed bucket, endpoint or addressing style is refused with a reason", arguments: [
        ("s3://Upper_Case", [String: String]()), ("s3://ab", [:]), ("s3://-bucket", [:]), ("s3://a..b", [:]),
        ("s3://bucket", ["AWS_ENDPOINT_URL_S3": "minio:9000"]), ("s3://bucket", ["CHUNKCACHE_S3_ADDRESSING": "sideways"]),
    ])
    func refusesMalformed(_ url: String, _ environment: [String: String]) {
        #expect(throws: S3Settings.Invalid.self) { try S3Settings.resolve(url: url, environment: environment, home: nil) }
    }

    @Test("an S3 error document tells a missing bucket from a missing key")
    func s3Errors() {
        let backend = S3Backend(settings: try! S3Settings.resolve(url: "s3://bucket", environment: [:], home: nil))
        func reply(_ status: Int, _ code: String?) -> HTTPClient.Reply {
            .init(status: status, body: code.map { Array("<?xml version=\"1.0\"?><Error><Code>\($0)</Code><Message>m</Message></Error>".utf8) } ?? [])
        }
        #expect(backend.failure(reply(404, "NoSuchKey"), method: "GET", path: "ac/1") == nil)
        #expect(backend.failure(reply(404, nil), method: "HEAD", path: "cas/1") == nil)
        #expect(backend.failure(reply(404, "NoSuchBucket"), method: "GET", path: "ac/1")?.contains("does not exist") == true)
        #expect(backend.failure(reply(403, "SignatureDoesNotMatch"), method: "PUT", path: "cas/1")?.contains("credentials") == true)
        #expect(backend.failure(reply(503, "SlowDown"), method: "PUT", path: "cas/1")?.contains("SlowDown") == true)
    }

    // MARK: Blobs as they come back

    @Test("a blob is taken as it is if it hashes right, else decoded from zstd and checked again; anything else is refused")
    func blobsComeBackPlainOrCompressed() throws {
        let tier = try RemoteTier(configuration: .init(url: "http://127.0.0.1:9/cache", environment: [:]), counters: CacheCounters(), logger: .init(label: "test"))
        let plain = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 % 251 &* 7) }
        let digest = SHA256.hash(plain)
        var frame: [UInt8] = []
        #expect(plain.withUnsafeBytes { Compressor(codec: .zstd, level: 3).compress($0, into: &frame) } == .zstd)
        #expect(tier.plainBlob(plain, digest: digest, size: plain.count) == plain)
        #expect(tier.plainBlob(frame, digest: digest, size: plain.count) == plain)
        var damaged = frame
        damaged[damaged.count / 2] ^= 0x40
        #expect(tier.plainBlob(damaged, digest: digest, size: plain.count) == nil)
        #expect(tier.plainBlob(Array(frame.prefix(frame.count / 2)), digest: digest, size: plain.count) == nil)
        #expect(tier.plainBlob(frame, digest: digest, size: plain.count - 1) == nil, "a size that does not match is refused")
        var other = plain
        other[0] ^= 1
        var otherFrame: [UInt8] = []
        _ = other.withUnsafeBytes { Compressor(codec: .zstd, level: 3).compress($0, into: &otherFrame) }
        #expect(tier.plainBlob(otherFrame, digest: digest, size: plain.count) == nil, "a frame of other bytes is refused")
    }

    // MARK: Action-cache entries

    @Test("an entry names the manifest by digest and carries it inline, and survives re-serialization with fields added")
    func actionResultRoundTrip() throws {
        let manifest = Array("CCM1 manifest bytes".utf8)
        let entry = ActionResult(outputFiles: [.init(path: RemoteTier.manifestPath, hash: SHA256.hash(manifest).hex, size: Int64(manifest.count), contents: manifest)])
        var stored = entry.encoded()
        // What bazel-remote adds: execution_metadata (9) with a worker (1), before or after ours.
        var metadata: [UInt8] = []
        Protobuf.appendBytes(1, Array("10.0.0.7".utf8), to: &metadata)
        Protobuf.appendBytes(9, metadata, to: &stored)
        Protobuf.appendVarint(4, 0, to: &stored)  // exit_code
        #expect(try ActionResult(decoding: stored) == entry)
    }

    @Test("a truncated or garbage entry is refused, not misread", arguments: [
        [0x12, 0x05, 0x0a], [0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], [0x0b], [0x00, 0x01], [0x12, 0x02, 0x12, 0x09],
    ] as [[UInt8]])
    func refusesGarbage(_ bytes: [UInt8]) {
        #expect(throws: ActionResult.Malformed.self) { try ActionResult(decoding: bytes) }
    }
}

/// The order of a run's requests as the remote keeps it, for an empty store's prefetch.
@Suite("Remote order")
struct RemoteOrderTests {
    @Test("an order reads back as written: whole keys, in order")
    func roundTrip() {
        let keys = (0..<300).map { SHA256.hash([UInt8($0 % 256), UInt8($0 / 256)]) }
        #expect(RemoteOrder.decode(RemoteOrder.encode(keys)) == keys)
        #expect(RemoteOrder.decode(RemoteOrder.encode([])) == [])
    }

    @Test("a truncated, padded, oversized or foreign order is refused, not misread")
    func refusesDamage() {
        let encoded = RemoteOrder.encode([SHA256.hash([1]), SHA256.hash([2])])
        #expect(RemoteOrder.decode(Array(encoded.dropLast())) == nil)
        #expect(RemoteOrder.decode(encoded + [0]) == nil)
        var tooMany = RemoteOrder.magic
        withUnsafeBytes(of: UInt32(RecordedOrders.maxKeys + 1).littleEndian) { tooMany.append(contentsOf: $0) }
        #expect(RemoteOrder.decode(tooMany + [UInt8](repeating: 0, count: (RecordedOrders.maxKeys + 1) * 32)) == nil)
        #expect(RemoteOrder.decode(Array("CCM1 a manifest, not an order".utf8)) == nil)
    }

    @Test("it is kept under a key of its own per context, which no action key can be")
    func keys() {
        #expect(RemoteTier.orderKey(context: 1) == RemoteTier.orderKey(context: 1))
        #expect(RemoteTier.orderKey(context: 1) != RemoteTier.orderKey(context: 2))
    }
}
