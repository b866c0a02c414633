import ArgumentParser
import FileIO

/// Reads "NUMBER UNIT" against a unit table; `unlimited` (or `none`) is `Double.infinity`.
private func quantity(_ argument: String, units: [String: Double]) -> Double? {
    let text = argument.trimmed.lowercased()
    if text == "unlimited" || text == "none" { return .infinity }
    let digits = text.prefix { $0.isNumber || $0 == "." }
    guard let value = Double(digits), value >= 0, let unit = units[String(text.dropFirst(digits.count))] else { return nil }
    return value * unit
}

/// A size such as `5GiB`, `500MB`, `10G`, `1048576` (bytes), or `unlimited`.
struct ByteSize: ExpressibleByArgument {
    let bytes: Int64

    init?(argument: String) {
        let units: [String: Double] = [
            "": 1, "b": 1, "k": 1024, "kb": 1e3, "kib": 1024, "m": 1_048_576, "mb": 1e6, "mib": 1_048_576,
            "g": 1_073_741_824, "gb": 1e9, "gib": 1_073_741_824, "t": 1_099_511_627_776, "tb": 1e12, "tib": 1_099_511_627_776,
        ]
        guard let value = quantity(argument, units: units) else { return nil }
        guard value.isFinite else {
            bytes = .max
            return
        }
        guard value < 9e18 else { return nil }
        bytes = Int64(value)
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

/// A setting's value: `flag` if given, else the environment variable `variable` read as `T`
/// (`what` names the kind of value in the error), else nil.
func setting<T: ExpressibleByArgument>(_ flag: T?, variable: String, what: String) throws -> T? {
    if let flag { return flag }
    guard let text = environment(variable), !text.isEmpty else { return nil }
    guard let parsed = T(argument: text) else { throw ValidationError("\(variable): cannot read \(text.debugDescription) as \(what)") }
    return parsed
}

extension ByteSize {
    /// The size in effect: `flag`, else the environment variable `variable`, else `fallback`;
    /// `unlimited` is a very large number.
    static func setting(_ flag: ByteSize?, variable: String, fallback: Int64) throws -> Int64 {
        guard let bytes = try ChunkCacheCLI.setting(flag, variable: variable, what: "a size")?.bytes else { return fallback }
        return bytes == .max ? Int64.max / 2 : bytes
    }
}

/// A duration such as `5d`, `12h`, `30m`, `90s`, or `unlimited` (nil).
struct Age: ExpressibleByArgument {
    let duration: Duration?

    init?(argument: String) {
        guard let seconds = quantity(argument, units: ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400]) else { return nil }
        guard seconds.isFinite else {
            duration = nil
            return
        }
        guard seconds < 9e9 else { return nil }
        duration = .nanoseconds(Int64(seconds * 1e9))
    }
}


/// The store's budget, shared by `serve` (applied when a run ends) and `trim`.
struct BudgetOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Largest size of the store on disk, e.g. 5GiB, or 'unlimited' (default: $CHUNKCACHE_MAX_SIZE, else 10GiB or a quarter of the store's filesystem, whichever is smaller). Over it, least recently used outputs are evicted down to 90 %.", valueName: "size"))
    var maxSize: ByteSize?

    @Option(help: ArgumentHelp("Drop outputs unused for this long, e.g. 5d, 12h, or 'unlimited' (default: $CHUNKCACHE_MAX_AGE, else 5d).", valueName: "age"))
    var maxAge: Age?

    /// The limits in effect for the store at `directory`: flags, then environment, then defaults.
    func resolved(for directory: String) throws -> (maxSize: Int64?, maxAge: Duration?) {
        let size = try setting(maxSize, variable: "CHUNKCACHE_MAX_SIZE", what: "a size")
        let age = try setting(maxAge, variable: "CHUNKCACHE_MAX_AGE", what: "a duration")
        let bytes = size?.bytes ?? Self.defaultMaxSize(for: directory)
        return (bytes == .max ? nil : bytes, age.map(\.duration) ?? .seconds(5 * 86_400))
    }

    /// 10 GiB, but at most a quarter of the filesystem the store is on: on a small disk (the
    /// machines a compact cache is for) a fixed budget would let the store fill the disk before
    /// it ever applied. A quarter leaves room for what a run holds before trimming (new packs
    /// awaiting recompression, live files on disk) and for everything else on the disk.
    static func defaultMaxSize(for directory: String) -> Int64 {
        var path = FileSystem.absolutePath(directory)
        while !FileSystem.exists(path), path != "/" { path = FileSystem.parentDirectory(of: path) }
        guard let total = try? FileSystem.space(at: path).total, total > 0 else { return 10 << 30 }
        return min(10 << 30, total / 4)
    }
}
