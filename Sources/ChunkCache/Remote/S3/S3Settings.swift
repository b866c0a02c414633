import FileIO

/// Where a bucket is and who we are to it, found as the AWS SDKs and CLI find them, from the
/// environment and the shared files:
/// - region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else us-east-1;
/// - endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url` (none of
///   them if `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), else AWS's own for the region;
/// - credentials: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, then the
///   profile (`AWS_PROFILE`, else `default`) in the credentials file
///   (`AWS_SHARED_CREDENTIALS_FILE`, else ~/.aws/credentials), then in the config file
///   (`AWS_CONFIG_FILE`, else ~/.aws/config); none found means unsigned requests (a public
///   bucket). Instance metadata, SSO and `credential_process` are not read.
/// - addressing: path-style (`endpoint/bucket/key`) for an endpoint of one's own (MinIO, Ceph,
///   R2 need it), virtual-hosted (`bucket.endpoint/key`) for AWS unless the bucket name has a dot
///   (TLS certificates cover one label); the profile's `s3 = addressing_style = path|virtual`
///   or `CHUNKCACHE_S3_ADDRESSING=path|virtual` decides instead.
struct S3Settings: Sendable, Equatable {
    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    var bucket: String
    /// The key prefix under which the cache lives: "" or "a/b/" (always ending in a slash).
    var prefix: String
    var region: String
    /// `scheme://host[:port]` of the service, without the bucket.
    var endpoint: String
    var pathStyle: Bool
    var credentials: SigV4.Credentials?

    /// Settings for `url` (`s3://BUCKET[/PREFIX]`).
    static func resolve(url: String, environment: [String: String], home: String?) throws(Invalid) -> S3Settings {
        guard url.hasPrefix("s3://") else { throw Invalid(description: "\(url) is not an s3:// URL") }
        let rest = url.dropFirst(5)
        let bucket = String(rest.prefix { $0 != "/" })
        guard isValidBucket(bucket) else {
            throw Invalid(description: "\(bucket.debugDescription) is not a bucket name (3 to 63 of a-z, 0-9, '.', '-', starting and ending with a letter or digit)")
        }
        let path = rest.dropFirst(bucket.count).split(separator: "/").joined(separator: "/")
        let prefix = path.isEmpty ? "" : path + "/"

        func setting(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        let profileName = setting("AWS_PROFILE") ?? setting("AWS_DEFAULT_PROFILE") ?? "default"
        let configFile = setting("AWS_CONFIG_FILE") ?? home.map { $0 + "/.aws/config" }
        let credentialsFile = setting("AWS_SHARED_CREDENTIALS_FILE") ?? home.map { $0 + "/.aws/credentials" }
        let config = configFile.flatMap { SharedFile.read($0) }?.section(profileName == "default" ? ["default", "profile default"] : ["profile \(profileName)"]) ?? [:]
        let shared = credentialsFile.flatMap { SharedFile.read($0) }?.section([profileName]) ?? [:]

        let region = setting("AWS_REGION") ?? setting("AWS_DEFAULT_REGION") ?? config["region"] ?? "us-east-1"
        var endpoint: String?
        if setting("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")?.lowercased() != "true" {
            endpoint = setting("AWS_ENDPOINT_URL_S3") ?? setting("AWS_ENDPOINT_URL") ?? config["s3.endpoint_url"] ?? config["endpoint_url"]
        }
        if let given = endpoint {
            guard given.hasPrefix("http://") || given.hasPrefix("https://") else {
                throw Invalid(description: "the S3 endpoint \(given) must start with http:// or https://")
            }
            endpoint = given.hasSuffix("/") ? String(given.dropLast()) : given
        }
        let addressing = setting("CHUNKCACHE_S3_ADDRESSING") ?? config["s3.addressing_style"]
        let pathStyle: Bool
        switch addressing?.lowercased() {
        case "path": pathStyle = true
        case "virtual": pathStyle = false
        case nil, "auto": pathStyle = endpoint != nil || bucket.contains(".")
        case let other?: throw Invalid(description: "S3 addressing style \(other.debugDescription) is not path, virtual or auto")
        }

        func credentials(_ id: String?, _ secret: String?, _ token: String?) -> SigV4.Credentials? {
            guard let id, let secret, !id.isEmpty, !secret.isEmpty else { return nil }
            return .init(accessKeyID: id, secretAccessKey: secret, sessionToken: token.flatMap { $0.isEmpty ? nil : $0 })
        }
        let found = credentials(setting("AWS_ACCESS_KEY_ID"), setting("AWS_SECRET_ACCESS_KEY"), setting("AWS_SESSION_TOKEN"))
            ?? credentials(shared["aws_access_key_id"], shared["aws_secret_access_key"], shared["aws_session_token"])
            ?? credentials(config["aws_access_key_id"], config["aws_secret_access_key"], config["aws_session_token"])
        return S3Settings(
            bucket: bucket, prefix: prefix, region: region, endpoint: endpoint ?? "https://s3.\(region).amazonaws.com",
            pathStyle: pathStyle, credentials: found)
    }

    /// The URL of the object `key` (under the prefix), and the path in it as signed.
    func url(of key: String) -> (url: String, host: String, path: String) {
        let scheme = endpoint.prefix { $0 != ":" }
        let authority = String(endpoint.dropFirst(scheme.count + 3))
        let encoded = SigV4.encodePath(prefix + key)
        if pathStyle {
            let path = "/" + SigV4.encodePath(bucket) + "/" + encoded
            return ("\(scheme)://\(authority)\(path)", authority, path)
        }
        let host = bucket + "." + authority
        return ("\(scheme)://\(host)/\(encoded)", host, "/" + encoded)
    }

    /// S3's rules for bucket names (the ones every S3-compatible store accepts).
    static func isValidBucket(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { return false }
        func alphanumeric(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) }
        guard alphanumeric(bytes.first!), alphanumeric(bytes.last!) else { return false }
        return bytes.allSatisfy { alphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") } && !name.contains("..")
    }
}

/// An AWS shared config or credentials file: `[section]` headers, `name = value` lines, `#` and
/// `;` comments, and indented `name = value` lines under a `name =` line with no value (nested
/// settings such as `s3 =` / `  addressing_style = path`, read as `s3.addressing_style`).
struct SharedFile {
    var sections: [String: [String: String]] = [:]

    static func read(_ path: String) -> SharedFile? {
        guard let bytes = try? FileSystem.readFile(path) else { return nil }
        return SharedFile(parsing: String(decoding: bytes, as: UTF8.self))
    }

    init(parsing text: String) {
        var section: String?
        var nested: String?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let indented = rawLine.first == " " || rawLine.first == "\t"
            let line = rawLine.trimmed
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast()).trimmed
                nested = nil
                continue
            }
            guard let name = section, let equals = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<equals]).trimmed.lowercased()
            let value = String(line[line.index(after: equals)...]).trimmed
            if indented, let parent = nested {
                sections[name, default: [:]][parent + "." + key] = value
            } else {
                nested = value.isEmpty ? key : nil
                if !value.isEmpty { sections[name, default: [:]][key] = value }
            }
        }
    }

    /// The first of `names` that is present.
    func section(_ names: [String]) -> [String: String]? {
        names.lazy.compactMap { sections[$0] }.first
    }
}
