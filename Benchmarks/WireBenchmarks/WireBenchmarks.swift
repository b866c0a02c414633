import Benchmark
import CacheProgWire

// Decoding and encoding the GOCACHEPROG stream: requests per second for small messages, and
// MB/s for put bodies (base64 inside a JSON string, decoded in pieces as they arrive).

private func requestStream(count: Int) -> [UInt8] {
    var stream: [UInt8] = []
    for id in 1...count {
        let action = [UInt8](repeating: UInt8(truncatingIfNeeded: id), count: 32)
        stream += Request(id: Int64(id), command: .get, actionID: action).encoded()
    }
    return stream
}

private func putStream(bodySize: Int) -> [UInt8] {
    let body = (0..<bodySize).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
    var stream = Request(id: 1, command: .put, actionID: [UInt8](repeating: 1, count: 32), outputID: [UInt8](repeating: 2, count: 32), bodySize: Int64(bodySize)).encoded()
    var encoder = BodyEncoder()
    encoder.begin(into: &stream)
    body.withUnsafeBytes { encoder.encode($0, into: &stream) }
    encoder.end(into: &stream)
    return stream
}

/// Feeds `stream` in 64 KiB reads, as from a pipe; returns decoded body bytes (so nothing is
/// optimised away).
private func decodeAll(_ stream: [UInt8]) -> Int {
    var decoder = RequestDecoder()
    var total = 0
    var offset = 0
    while offset < stream.count {
        let end = min(stream.count, offset + 65_536)
        stream[offset..<end].withUnsafeBytes { raw in
            decoder.feed(raw) { event in
                switch event {
                case .request: total += 1
                case .body(let bytes): total += bytes.count
                default: break
                }
            }
        }
        offset = end
    }
    return total
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput, .mallocCountTotal], maxDuration: .seconds(3))

    let gets = requestStream(count: 10_000)
    Benchmark("decode 10k get requests", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(decodeAll(gets)) }
    }

    let put = putStream(bodySize: 8 << 20)
    Benchmark("decode an 8 MiB put body", configuration: .init(metrics: [.wallClock, .throughput, .peakMemoryResident])) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(decodeAll(put)) }
    }

    let response = Response(id: 12_345, outputID: [UInt8](repeating: 3, count: 32), size: 123_456, time: Timestamp(seconds: 1_800_000_000, nanoseconds: 123_456_789), diskPath: "/home/user/.cache/chunkcache/live/1234-1-abc/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    Benchmark("encode 10k hit responses", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            var bytes = 0
            for _ in 0..<10_000 { bytes += response.encoded().count }
            blackHole(bytes)
        }
    }
}
