#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: what was attempted, on which path, and `errno`.
public struct SystemError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The operation, such as "open" or "rename".
    public let operation: String
    /// The path it was applied to, if any.
    public let path: String?
    /// The C `errno` value.
    public let code: Int32

    public init(_ operation: String, path: String? = nil, code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    /// The file or directory does not exist.
    public var isNotFound: Bool { code == ENOENT }
    /// The name is taken.
    public var isExists: Bool { code == EEXIST }
    /// The disk or a quota is full, or a file-size limit was hit.
    public var isOutOfSpace: Bool { code == ENOSPC || code == EDQUOT || code == EFBIG }

    public var description: String {
        let reason = String(cString: strerror(code))
        if let path { return "\(operation) \(path): \(reason)" }
        return "\(operation): \(reason)"
    }
}

/// Runs a system call until it is not interrupted; throws `SystemError` when it returns -1.
@inline(__always)
func retrying<T: FixedWidthInteger>(_ operation: String, path: String? = nil, _ call: () -> T) throws -> T {
    while true {
        let result = call()
        if result != -1 { return result }
        if errno == EINTR { continue }
        throw SystemError(operation, path: path)
    }
}
