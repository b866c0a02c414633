import ChunkStore
import FileIO

#if canImport(Glibc)
import Glibc
#endif

/// Progress of a long command on one line of standard error, redrawn in place at most ten times
/// a second, when standard error is a terminal; nothing at all otherwise (a pipe or a CI log gets
/// only the command's summary, on standard output).
///
///     verifying  4,210 / 9,529 outputs  81.2 MiB / 183.4 MiB  40.6 MiB/s  0:03 left
final class ProgressLine {
    private let verb: String
    private let items: String
    private let enabled: Bool
    private let started = ContinuousClock.now
    private var lastDrawn: ContinuousClock.Instant?

    init(_ verb: String, items: String, enabled: Bool = isatty(2) != 0) {
        self.verb = verb
        self.items = items
        self.enabled = enabled
    }

    /// Redraws the line for `progress`, unless it was drawn less than 0.1 s ago.
    func update(_ progress: Progress) {
        guard enabled else { return }
        let now = ContinuousClock.now
        if let lastDrawn, now - lastDrawn < .milliseconds(100) { return }
        lastDrawn = now
        write("\r\u{1B}[K" + Self.text(verb, items: items, progress, elapsed: now - started))
    }

    /// Clears the line (before the summary is printed).
    func finish() {
        guard enabled, lastDrawn != nil else { return }
        write("\r\u{1B}[K")
    }

    private func write(_ text: String) {
        try? FileDescriptor.standardError.writeAll(Array(text.utf8))
    }

    /// The line's text: items and bytes done of their totals (when known), the rate, and the time
    /// left at that rate (by bytes when their total is known, else by items).
    static func text(_ verb: String, items: String, _ progress: Progress, elapsed: Duration) -> String {
        let seconds = max(elapsed.inSeconds, 0.001)
        var parts = [verb]
        parts.append(progress.totalItems > 0 ? "\(grouped(progress.items)) / \(grouped(progress.totalItems)) \(items)" : "\(grouped(progress.items)) \(items)")
        if progress.totalBytes > 0 {
            parts.append("\(Formatting.bytes(progress.bytes)) / \(Formatting.bytes(progress.totalBytes))")
        } else if progress.bytes > 0 {
            parts.append(Formatting.bytes(progress.bytes))
        }
        let byBytes = progress.bytes > 0
        let rate = Double(byBytes ? progress.bytes : progress.items) / seconds
        parts.append(byBytes ? "\(Formatting.bytes(Int64(rate)))/s" : "\(Formatting.fixed(rate, digits: 0)) \(items)/s")
        let (done, total) = byBytes && progress.totalBytes > 0 ? (progress.bytes, progress.totalBytes) : (progress.items, progress.totalItems)
        if total > 0, done > 0, rate > 0 {
            let left = Int(Double(max(0, total - done)) / (Double(done) / seconds))
            parts.append("\(left / 60):\(left % 60 < 10 ? "0" : "")\(left % 60) left")
        }
        return parts.joined(separator: "  ")
    }

    /// 9529 as "9,529".
    static func grouped(_ number: Int64) -> String {
        var digits = Array(String(number.magnitude))
        var index = digits.count - 3
        while index > 0 {
            digits.insert(",", at: index)
            index -= 3
        }
        return (number < 0 ? "-" : "") + String(digits)
    }
}
