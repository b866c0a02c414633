#if canImport(Glibc)
import Glibc
#endif

/// Numbers as people read them, without Foundation (whose loading costs every run about 3 ms).
public enum Formatting {
    /// `value` with `digits` digits after the point ("%.Nf").
    public static func fixed(_ value: Double, digits: Int) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        _ = withVaList([Int32(digits), value]) { vsnprintf(&buffer, buffer.count, "%.*f", $0) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A byte count in binary units: "512 B", "18.4 KiB", "41.2 MiB".
    public static func bytes(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var unit = 0
        while abs(value) >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : "\(fixed(value, digits: 1)) \(units[unit])"
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    public var trimmed: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
