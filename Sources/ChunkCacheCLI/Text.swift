import FileIO

#if canImport(Glibc)
import Glibc
#endif

// Small text and environment helpers. The command-line tool does without Foundation: loading it
// cost every run, including each one the go command starts, about 3 ms before the handshake.

/// The environment variable `name`, if set and not empty: the tool's one reader of the
/// environment (an empty variable means unset, as with the go command's own).
func environment(_ name: String) -> String? {
    guard let value = getenv(name), value.pointee != 0 else { return nil }
    return String(cString: value)
}

/// A wall-clock time as "2026-11-27 10:51:20 UTC".
func utcText(_ time: Timestamp) -> String {
    var seconds = time_t(time.seconds)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    var buffer = [CChar](repeating: 0, count: 64)
    let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
    return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
