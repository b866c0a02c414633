import CLibCrypto

/// HMAC-SHA256 from the system's libcrypto (OpenSSL), for request signatures (AWS Signature
/// Version 4 chains four of them per request).
public enum HMACSHA256 {
    /// The 32-byte authentication code of `message` under `key`.
    public static func authenticate(_ message: some Collection<UInt8>, key: some Collection<UInt8>) -> [UInt8] {
        let key = Array(key), message = Array(message)
        var out = [UInt8](repeating: 0, count: SHA256.byteCount)
        var length: UInt32 = 0
        key.withUnsafeBytes { keyBytes in
            message.withUnsafeBytes { messageBytes in
                out.withUnsafeMutableBufferPointer { output in
                    // A nil key or message pointer is fine when its count is 0.
                    _ = HMAC(EVP_sha256(), keyBytes.baseAddress, Int32(keyBytes.count),
                             messageBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), messageBytes.count,
                             output.baseAddress, &length)
                }
            }
        }
        return out
    }

    /// The code of the UTF-8 bytes of `message`.
    public static func authenticate(_ message: String, key: some Collection<UInt8>) -> [UInt8] {
        authenticate(Array(message.utf8), key: key)
    }
}
