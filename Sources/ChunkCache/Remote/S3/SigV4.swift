import Digests
import FileIO

/// AWS Signature Version 4 for S3 (header-based, with the payload's SHA-256 always signed):
/// the canonical request, the string to sign, the derived key and the headers a request carries.
/// Checked against botocore's signer (Tests/ChunkCacheTests/Fixtures/sigv4-botocore.json, made
/// by scripts/remote/sigv4_known_answers.py).
struct SigV4: Sendable {
    struct Credentials: Sendable, Equatable {
        var accessKeyID: String
        var secretAccessKey: String
        var sessionToken: String?
    }

    let credentials: Credentials
    let region: String
    var service = "s3"

    /// The headers to add to a request: `Authorization`, `X-Amz-Date`, `X-Amz-Content-SHA256`
    /// and, with a session token, `X-Amz-Security-Token`. `path` is the URL's path exactly as
    /// sent (already percent-encoded: S3 signs it as it is), `headers` every other header the
    /// request sends that is to be signed (`Host` among them).
    func sign(method: String, path: String, query: String = "", headers: [(name: String, value: String)],
              payloadHash: String, time: Timestamp) -> [(name: String, value: String)] {
        let stamp = Self.timestamp(time)
        var added: [(name: String, value: String)] = [("X-Amz-Date", stamp), ("X-Amz-Content-SHA256", payloadHash)]
        if let token = credentials.sessionToken { added.append(("X-Amz-Security-Token", token)) }
        // Lower-cased names, values with runs of blanks folded, repeated names joined by commas.
        var canonical: [String: [String]] = [:]
        for (name, value) in headers + added {
            canonical[name.lowercased(), default: []].append(value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " "))
        }
        let names = canonical.keys.sorted()
        let signedHeaders = names.joined(separator: ";")
        let canonicalRequest = [
            method, path, Self.canonicalQuery(query),
            names.map { "\($0):\(canonical[$0]!.joined(separator: ","))\n" }.joined(),
            signedHeaders, payloadHash,
        ].joined(separator: "\n")
        let scope = "\(stamp.prefix(8))/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", stamp, scope, SHA256.hash(Array(canonicalRequest.utf8)).hex].joined(separator: "\n")
        var key = HMACSHA256.authenticate(String(stamp.prefix(8)), key: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [region, service, "aws4_request"] { key = HMACSHA256.authenticate(part, key: key) }
        let signature = Hex.encode(HMACSHA256.authenticate(stringToSign, key: key))
        added.append(("Authorization", "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"))
        return added
    }

    /// `YYYYMMDD'T'HHMMSS'Z'` in UTC: RFC 3339 of the whole second, without its separators.
    static func timestamp(_ time: Timestamp) -> String {
        String(Timestamp(seconds: time.seconds).rfc3339.filter { $0 != "-" && $0 != ":" })
    }

    /// A query string's pairs sorted by name, then value (they are sent already encoded).
    static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        let pairs = query.split(separator: "&", omittingEmptySubsequences: false).map { pair -> (String, String) in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }
        return pairs.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// `key` percent-encoded for a URL path as S3 expects it: every byte but the unreserved
    /// characters (`A-Z a-z 0-9 - . _ ~`) and `/`.
    static func encodePath(_ key: String) -> String {
        var out = ""
        for byte in key.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 15)]], as: UTF8.self)
            }
        }
        return out
    }
}
