import Digests
import FileIO

/// An S3 bucket (AWS, or any store that speaks S3: MinIO, Ceph, R2), with every request signed
/// by Signature Version 4 unless no credentials were found.
struct S3Backend: RemoteBackend {
    let settings: S3Settings
    private let signer: SigV4?

    init(settings: S3Settings) {
        self.settings = settings
        signer = settings.credentials.map { SigV4(credentials: $0, region: settings.region) }
    }

    var location: String { "s3://\(settings.bucket)/\(settings.prefix)" }

    func prepare(_ method: String, _ path: String, headers extra: [(name: String, value: String)], body: [UInt8]) -> (url: String, headers: [String]) {
        let (url, host, signedPath) = settings.url(of: path)
        // What libcurl sends on its own (Host, Content-Length, Accept, User-Agent) is not signed,
        // but Host, which S3 requires to be; Content-Type is set so that libcurl sends no form type.
        var headers = extra
        if method == "PUT" { headers.append(("Content-Type", "application/octet-stream")) }
        headers.append(("Host", host))  // sent as signed, default port or not
        var lines = headers.map { "\($0.name): \($0.value)" }
        if let signer {
            let payloadHash = SHA256.hash(body).hex
            let signed = signer.sign(method: method, path: signedPath, headers: headers, payloadHash: payloadHash, time: Timestamp(nanosecondsSinceEpoch: WallClock.nanoseconds()))
            lines += signed.map { "\($0.name): \($0.value)" }
        }
        return (url, lines)
    }

    func failure(_ reply: HTTPClient.Reply, method: String, path: String) -> String? {
        // S3 answers 404 for a missing bucket as for a missing key; only the body tells them
        // apart. A HEAD has no body: its 404 is a missing key (a missing bucket shows on the PUT).
        let code = Self.errorCode(reply.body)
        if reply.status == 404, code == nil || code == "NoSuchKey" { return nil }
        switch code {
        case "NoSuchBucket": return "bucket \(settings.bucket) does not exist (\(settings.endpoint))"
        case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken":
            return "HTTP \(reply.status) \(code!) for \(method) \(path): check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE) and the bucket's policy"
        case let code?: return "HTTP \(reply.status) \(code) for \(method) \(path)"
        case nil: return "HTTP \(reply.status) for \(method) \(path)"
        }
    }

    /// The `<Code>` of an S3 error document, if the body is one.
    static func errorCode(_ body: [UInt8]) -> String? {
        let text = Array(body.prefix(4096))
        func find(_ needle: String, from start: Int) -> Int? {
            let pattern = Array(needle.utf8)
            guard text.count >= pattern.count, start <= text.count - pattern.count else { return nil }
            return (start...(text.count - pattern.count)).first { text[$0..<$0 + pattern.count].elementsEqual(pattern) }
        }
        guard let open = find("<Code>", from: 0), let close = find("</Code>", from: open + 6) else { return nil }
        return String(decoding: text[(open + 6)..<close], as: UTF8.self)
    }
}
