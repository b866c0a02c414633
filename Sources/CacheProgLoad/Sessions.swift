import CacheProg
import CacheProgWire
import Digests
import FileIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What one run of a cache program did: the time to its handshake, to the last reply, to its
/// close reply, and to its exit (background work after close included).
struct SessionTimes: Sendable {
    var startup: Duration = .zero
    var requests: Duration = .zero
    var close: Duration = .zero
    var exit: Duration = .zero
}

/// Runs `program` once as the go command would (handshake, requests, close) and waits for it to
/// exit, however long its background work takes.
func session<R: Sendable>(
    _ program: [String], _ body: @Sendable (CacheProgClient) async throws -> R
) async throws -> (result: R, times: SessionTimes) {
    let clock = ContinuousClock()
    let started = clock.now
    let marks = Mutex((handshake: started, requests: started, close: started))
    let (result, status) = try await CacheProgClient.withProgram(program, exitTimeout: .seconds(3600)) { client in
        marks.withLock { $0.handshake = clock.now }
        let result = try await body(client)
        marks.withLock { $0.requests = clock.now }
        try await client.close()
        marks.withLock { $0.close = clock.now }
        return result
    }
    let ended = clock.now
    guard status == 0 else { throw LoadFailure("\(program[0]) exited with status \(status)") }
    let at = marks.withLock { $0 }
    return (result, SessionTimes(
        startup: at.handshake - started, requests: at.requests - at.handshake, close: at.close - at.requests, exit: ended - at.close))
}

/// Runs `work` for indices 0..<count on `width` tasks at once, each taking the next index: the
/// go command's shape (a fixed number of actions in flight), not one task per request.
func forEachConcurrently(_ count: Int, width: Int, _ work: @escaping @Sendable (Int) async -> Void) async {
    let next = Counter()
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<max(1, min(width, count)) {
            group.addTask {
                while true {
                    let index = next.value.add(1, ordering: .relaxed).oldValue
                    guard index < count else { return }
                    await work(index)
                }
            }
        }
    }
}

/// A shared counter for tasks to take indices from.
private final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// The largest peak resident set of the children this process has waited for, in bytes.
func childrenPeakResidentBytes() -> Int64 {
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    return Int64(usage.ru_maxrss) * 1024
}

/// CPU time (user and system) of the children this process has waited for, in seconds.
func childrenCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Latency percentiles, in milliseconds.
func percentile(_ sorted: [Duration], _ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let index = min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)
    return sorted[max(0, index)].milliseconds
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var milliseconds: Double { seconds * 1000 }
}

/// One line of JSON on standard output: the figures, in the order given.
func report(_ fields: KeyValuePairs<String, any Sendable>) {
    let body = fields.map { key, value -> String in
        switch value {
        case let number as Double: return "\"\(key)\": \(number.isFinite ? String(format3(number)) : "null")"
        case let number as Int: return "\"\(key)\": \(number)"
        case let number as Int64: return "\"\(key)\": \(number)"
        default: return "\"\(key)\": \"\(value)\""
        }
    }.joined(separator: ", ")
    // Standard output is this tool's report (it is a client: no protocol runs on it).
    try? FileDescriptor.standardOutput.writeAll(Array("{\(body)}\n".utf8))
}

private func format3(_ value: Double) -> String {
    let scaled = (value * 1000).rounded() / 1000
    return "\(scaled)"
}
