import ArgumentParser
import CacheProg
import CacheProgWire
import Digests
import FileIO
import Synchronization

/// Drives any GOCACHEPROG program as the go command does, with outputs from a real Go build
/// turned into many builds (`Corpus`), and reports what it measured as one JSON line per run.
@main
struct CacheProgLoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cacheprog-load",
        abstract: "Puts and gets many builds' outputs through a GOCACHEPROG program, and times it.",
        discussion: """
            The outputs come from a Go build cache (GOCACHE=DIR go build std): build 0 is those
            outputs as they are; every other build is them under new action IDs with build IDs
            changed, some sections edited, a few packages rebuilt, and outputs from --additions
            added. Everything after -- is the program and its arguments:

                cacheprog-load put --corpus std --builds 0-9 -- chunkcache --dir /tmp/store
            """,
        subcommands: [Put.self, Get.self, Big.self])

    /// The sizes `--size` takes: a number with an optional binary unit.
    static func byteCount(_ text: String) -> Int64? {
        let units: [String: Int64] = ["": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30]
        let lower = text.lowercased()
        let digits = lower.prefix { $0.isNumber }
        guard let value = Int64(digits), let unit = units[String(lower.dropFirst(digits.count))] else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: unit)
        return overflow ? nil : product
    }
}

/// The corpus and the program, shared by the subcommands.
struct Workload: ParsableArguments {
    @Option(help: ArgumentHelp("A Go build cache whose outputs every build has.", valueName: "dir"))
    var corpus: String

    @Option(help: ArgumentHelp("A Go build cache whose further outputs builds add.", valueName: "dir"))
    var additions: String?

    @Option(help: ArgumentHelp("Builds, as FIRST-LAST (inclusive) or one number.", valueName: "range"))
    var builds = "0"

    @Option(help: "Requests in flight per program (the go command's -p, by default the CPU count).")
    var concurrency = System.coreCount

    @Argument(parsing: .postTerminator, help: "The cache program and its arguments.")
    var program: [String] = []

    func validate() throws {
        guard !program.isEmpty else { throw ValidationError("no program: give it after --") }
        guard range != nil else { throw ValidationError("--builds: expected FIRST-LAST or a number, not \(builds.debugDescription)") }
        guard concurrency > 0 else { throw ValidationError("--concurrency must be positive") }
    }

    var range: ClosedRange<Int>? {
        let parts = builds.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        switch parts.count {
        case 1: if let first = parts[0], first >= 0 { return first...first }
        case 2: if let first = parts[0], let last = parts[1], first >= 0, last >= first { return first...last }
        default: break
        }
        return nil
    }
}

extension CacheProgLoadCommand {
    /// One run of the program per build, each putting that build's every output.
    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store builds, one run of the program each.")

        @OptionGroup var workload: Workload

        func run() async throws {
            let corpus = try Corpus(base: workload.corpus, additions: workload.additions)
            var failed = 0
            for build in workload.range! {
                let count = corpus.entryCount(variant: build)
                let tally = Mutex((bytes: Int64(0), errors: 0, firstError: ""))
                let (_, times) = try await session(workload.program) { client in
                    await forEachConcurrently(count, width: workload.concurrency) { index in
                        do {
                            let (action, body) = try corpus.entry(variant: build, index: index)
                            _ = try await client.put(action, body: body)
                            tally.withLock { $0.bytes += Int64(body.count) }
                        } catch {
                            tally.withLock { tally in
                                if tally.errors == 0 { tally.firstError = "\(error)" }
                                tally.errors += 1
                            }
                        }
                    }
                }
                let done = tally.withLock { $0 }
                failed += done.errors
                report([
                    "command": "put", "build": build, "outputs": count, "bytes": done.bytes, "errors": done.errors,
                    "startup_ms": times.startup.milliseconds, "requests_s": times.requests.seconds,
                    "put_mb_s": Double(done.bytes) / 1e6 / times.requests.seconds,
                    "close_s": times.close.seconds, "exit_s": times.exit.seconds,
                    "first_error": done.firstError,
                ])
            }
            report(["command": "put-total", "peak_rss_bytes": childrenPeakResidentBytes(), "errors": failed])
            if failed > 0 { throw ExitCode(1) }
        }
    }

    /// Gets a random sample of the builds' outputs, from one program or several at once, and
    /// checks every file a hit names.
    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Get a sample of stored outputs and time each get.")

        @OptionGroup var workload: Workload

        @Option(help: "Outputs each program is asked for.")
        var sample = 1000

        @Option(help: "Programs run at once, each on its own sample (as separate go commands would).")
        var clients = 1

        @Option(help: "Seed of the sample.")
        var seed: UInt64 = 1

        func validate() throws {
            guard sample > 0, clients > 0 else { throw ValidationError("--sample and --clients must be positive") }
        }

        struct Expected: Sendable {
            let action: ActionID
            let outputID: OutputID
            let size: Int64
        }

        struct Outcome: Sendable {
            var latencies: [Duration] = []
            var bytes: Int64 = 0
            var misses = 0
            var errors = 0
            var wrong = 0
            var firstProblem = ""
            var startup: Duration = .zero
            var requests: Duration = .zero

            mutating func problem(_ text: String) {
                if firstProblem.isEmpty { firstProblem = text }
            }
        }

        func run() async throws {
            let corpus = try Corpus(base: workload.corpus, additions: workload.additions)
            let range = workload.range!
            // What each client will ask for, and what a correct answer is: worked out before
            // any program starts, so no timed request waits for it.
            var samples: [[Expected]] = []
            for client in 0..<clients {
                var random = SplitMix64(seed: seed &+ UInt64(client) &* 0x9E37_79B9)
                var expected: [Expected] = []
                for _ in 0..<sample {
                    let build = range.lowerBound + Int(random.next() % UInt64(range.count))
                    let (action, body) = try corpus.entry(variant: build, index: Int(random.next() % UInt64(corpus.entryCount(variant: build))))
                    expected.append(Expected(action: action, outputID: OutputID(of: body), size: Int64(body.count)))
                }
                samples.append(expected)
            }
            let clock = ContinuousClock()
            let started = clock.now
            let outcomes = try await withThrowingTaskGroup(of: Outcome.self) { group in
                for expected in samples {
                    group.addTask { try await Self.getAll(expected, workload: workload) }
                }
                return try await group.reduce(into: [Outcome]()) { $0.append($1) }
            }
            let wall = clock.now - started
            let latencies = outcomes.flatMap(\.latencies).sorted()
            let bytes = outcomes.reduce(0) { $0 + $1.bytes }
            // Throughput over the span in which requests ran (the slowest client's), not the start-ups.
            let busy = outcomes.map(\.requests).max() ?? .zero
            let problems = outcomes.reduce(0) { $0 + $1.errors + $1.wrong }
            report([
                "command": "get", "clients": clients, "requests": latencies.count, "bytes": bytes,
                "misses": outcomes.reduce(0) { $0 + $1.misses }, "errors": outcomes.reduce(0) { $0 + $1.errors },
                "wrong": outcomes.reduce(0) { $0 + $1.wrong },
                "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
                "get_mb_s": Double(bytes) / 1e6 / busy.seconds, "gets_per_s": Double(latencies.count) / busy.seconds,
                "startup_ms": (outcomes.map(\.startup).max() ?? .zero).milliseconds,
                "wall_s": wall.seconds, "peak_rss_bytes": childrenPeakResidentBytes(),
                // The programs' CPU over their whole runs (start-up and exit included): how many
                // of the machine's cores the gets could have had.
                "program_cpu_s": childrenCPUSeconds(),
                "first_problem": outcomes.first { !$0.firstProblem.isEmpty }?.firstProblem ?? "",
            ])
            if problems > 0 { throw ExitCode(1) }
        }

        private static func getAll(_ expected: [Expected], workload: Workload) async throws -> Outcome {
            let (outcome, times) = try await session(workload.program) { client in
                let outcome = Mutex(Outcome())
                let hits = Mutex([(Int, CacheProgClient.Entry)]())
                let clock = ContinuousClock()
                let began = clock.now
                await forEachConcurrently(expected.count, width: workload.concurrency) { index in
                    let start = clock.now
                    do {
                        let entry = try await client.get(expected[index].action)
                        let took = clock.now - start
                        outcome.withLock { outcome in
                            outcome.latencies.append(took)
                            if let entry { outcome.bytes += entry.size } else { outcome.misses += 1 }
                        }
                        if let entry { hits.withLock { $0.append((index, entry)) } }
                    } catch {
                        outcome.withLock {
                            $0.errors += 1
                            $0.problem("get: \(error)")
                        }
                    }
                }
                // Checked after the timed part, while the files are still the program's to serve.
                var result = outcome.withLock { $0 }
                result.requests = clock.now - began
                for (index, entry) in hits.withLock({ $0 }) {
                    let want = expected[index]
                    if entry.outputID != want.outputID || entry.size != want.size {
                        result.wrong += 1
                        result.problem("\(want.action): reply names another output")
                    } else if let found = try? fileDigest(entry.diskPath), found == (want.outputID.digest, want.size) {
                        continue
                    } else {
                        result.wrong += 1
                        result.problem("\(want.action): \(entry.diskPath) does not hold the output")
                    }
                }
                return result
            }
            var result = outcome
            result.startup = times.startup
            return result
        }
    }
}

/// SHA-256 and size of a file's contents.
func fileDigest(_ path: String) throws -> (SHA256Digest, Int64) {
    let descriptor = try FileDescriptor.open(path, .readOnly)
    defer { descriptor.close() }
    let (outputID, size) = try OutputID.ofContents(of: descriptor)
    return (outputID.digest, size)
}

enum System {
    static var coreCount: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

#if canImport(Glibc)
import Glibc
#endif
