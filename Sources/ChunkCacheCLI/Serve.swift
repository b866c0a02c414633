import ArgumentParser
import CacheProg
import ChunkCache
import ChunkStore
import Logging

#if canImport(Glibc)
import Glibc
#endif

extension ChunkCacheCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the go command as its GOCACHEPROG (the default).",
            discussion: "Speaks the protocol on standard input and output; logs go to standard error.")

        @OptionGroup var store: StoreOptions
        @OptionGroup var budget: BudgetOptions

        @Option(help: ArgumentHelp("Codec for new chunks: zstd or zlib. Stores read with either.", valueName: "codec"))
        var codec: String = "zstd"

        @Option(help: ArgumentHelp("Compression level of puts (zstd 1-19, default 1, fast: the go command waits for puts, and --recompress-level shrinks the chunks later; zlib 1-9, default 6).", valueName: "n"))
        var level: Int32?

        @Option(help: ArgumentHelp("Once the go command has moved on, recompress the chunks this run stored at this zstd level, with a dictionary trained on the store's own chunks (default: $CHUNKCACHE_RECOMPRESS_LEVEL, else 15; 0 for none). Puts stay at the fast --level; the store ends up smaller, at some CPU after the build, at low priority (15: about 13 s on two cores after a cold `go build std`; 9: a few seconds, and about a tenth more disk).", valueName: "n"))
        var recompressLevel: Int32?

        @Option(help: ArgumentHelp("CPU time recompression may take once the go command has gone, as a multiple of the run's own time, at least 2 s (default: $CHUNKCACHE_BACKGROUND_CPU, else 1). What is left is pending (see `stats`) and done after later runs; one process at a time recompresses a store.", valueName: "factor"))
        var backgroundCpu: Double?

        @Option(help: ArgumentHelp("Keep up to this much of decompressed outputs between runs, e.g. 2GiB (default: $CHUNKCACHE_KEEP_DECOMPRESSED, else 0: none). Warm builds then link files instead of writing them: faster, at this much more disk.", valueName: "size"))
        var keepDecompressed: ByteSize?

        @Flag(help: "Keep those decompressed outputs in memory (/dev/shm, beside the live files) instead of in the store: no disk, but memory that stays taken between runs (also $CHUNKCACHE_KEEP_IN_MEMORY=1).")
        var keepInMemory = false

        @Option(help: ArgumentHelp("Put up to this much of the files handed to the go command during a run in memory (/dev/shm), never more than a quarter of its free space (default: $CHUNKCACHE_LIVE_IN_MEMORY, else 1GiB; 0 for none). They are removed when the build ends; on disk they would be written only to be deleted.", valueName: "size"))
        var liveInMemory: ByteSize?

        @Option(help: ArgumentHelp("A shared cache used as a second tier (default: $CHUNKCACHE_REMOTE): an HTTP cache, http(s)://HOST/PATH (bazel-remote, or WebDAV such as nginx with dav_methods PUT), with an extra header, e.g. for authentication, from $CHUNKCACHE_REMOTE_HEADER (\"Name: value\"); or an S3 bucket, s3://BUCKET/PREFIX, with region, endpoint and credentials read as the AWS tools read them (AWS_REGION, AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/config and credentials).", valueName: "url"))
        var remote: String?

        @Flag(help: "Read from the remote tier, never write to it (untrusted jobs such as pull requests; also $CHUNKCACHE_REMOTE_READONLY=1).")
        var remoteReadonly = false

        @Flag(help: "Do not make ahead the files the last run of the same build asked for (also $CHUNKCACHE_PREFETCH=0). Prefetch follows the order of that run's requests on a low-priority thread, a bounded distance ahead, and stops when the build asks for other things.")
        var noPrefetch = false

        @Flag(help: "Log every request to standard error.")
        var verbose = false

        func validate() throws {
            guard let parsed = Codec(name: codec), parsed != .raw else {
                throw ValidationError("--codec must be zstd or zlib, not \(codec.debugDescription)")
            }
            _ = try budget.resolved(for: store.resolvedDirectory)
            _ = try keepBytes()
            _ = try liveInMemoryBytes()
            if let level {
                let range: ClosedRange<Int32> = parsed == .zstd ? 1...19 : 1...9
                guard range.contains(level) else { throw ValidationError("--level for \(codec) must be in \(range.lowerBound)...\(range.upperBound)") }
            }
            _ = try recompressionLevel()
            _ = try backgroundCPUShare()
        }

        func run() async throws {
            // A full disk or a file-size limit must fail a write (EFBIG), not kill the process;
            // a go command that went away must end us through EPIPE, cleanly.
            signal(SIGXFSZ, SIG_IGN)
            signal(SIGPIPE, SIG_IGN)
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
            var logger = Logger(label: "chunkcache")
            logger.logLevel = verbose ? .debug : .warning
            let directory = try store.resolvedDirectory
            let limits = try budget.resolved(for: directory)
            // The go command waits for the handshake before it goes on; opening the store (the
            // catalog, the recorded orders, sweeping old live files) takes a few milliseconds
            // more, which now overlap with the go command's own start instead of preceding it.
            // Its first request waits in the pipe until the store is open.
            try await CacheServer.sendCapabilitiesOverStandardOutput()
            var remoteConfiguration: RemoteTier.Configuration?
            if let url = remote ?? environment("CHUNKCACHE_REMOTE"), !url.isEmpty {
                var headers: [String: String] = [:]
                if let header = environment("CHUNKCACHE_REMOTE_HEADER"), let colon = header.firstIndex(of: ":") {
                    headers[header[..<colon].trimmed] = header[header.index(after: colon)...].trimmed
                }
                let readOnly = remoteReadonly || environment("CHUNKCACHE_REMOTE_READONLY") == "1"
                var configuration = RemoteTier.Configuration(url: url, headers: headers, readOnly: readOnly)
                // CHUNKCACHE_REMOTE_TIMEOUT: the longest wait for one request, in seconds (default 10).
                if let text = environment("CHUNKCACHE_REMOTE_TIMEOUT"), let seconds = Double(text), seconds > 0, seconds <= 600 {
                    configuration.timeout = seconds
                }
                remoteConfiguration = configuration
            }
            let handler: ChunkCacheHandler
            do {
                // CHUNKCACHE_CHUNK_AVERAGE (a power of two, bytes) is for measuring other chunk sizes
                // (scripts/sweep-chunking); a store keeps working across changes, but chunks of one
                // size never deduplicate against chunks of another.
                var average = 16 << 10
                if let text = environment("CHUNKCACHE_CHUNK_AVERAGE"), let value = Int(text), value >= 1024, value <= 1 << 22,
                    value.nonzeroBitCount == 1
                {
                    average = value
                }
                let chunkStore = try ChunkStore(
                    directory: directory,
                    configuration: .init(chunker: FastCDC(averageSize: average), codec: Codec(name: codec)!, level: level))
                if chunkStore.isReadOnly {
                    logger.warning("chunkcache: the store at \(directory) is read-only: serving hits from it, storing nothing.")
                }
                let memoryRoot = LiveFiles.privateMemoryRoot()
                handler = try ChunkCacheHandler(
                    store: chunkStore,
                    budget: .init(
                        maxSize: limits.maxSize, maxAge: limits.maxAge, keepDecompressed: try keepBytes(),
                        keepInMemory: keepInMemory || environment("CHUNKCACHE_KEEP_IN_MEMORY") == "1",
                        liveInMemory: LiveFiles.memoryBudget(limit: try liveInMemoryBytes(), root: memoryRoot),
                        recompressLevel: try recompressionLevel(), backgroundCPUShare: try backgroundCPUShare()),
                    remote: remoteConfiguration, memoryRoot: memoryRoot,
                    prefetch: noPrefetch || environment("CHUNKCACHE_PREFETCH") == "0" ? nil : ChunkCacheHandler.defaultPrefetchLead,
                    version: BuildInfo.token, logger: logger)
            } catch {
                logger.error("chunkcache: cannot use the store at \(directory): \(error). Serving without a cache; this build will not be cached.")
                let passThrough = try PassThroughHandler()
                _ = try await serve(passThrough, spoolDirectory: passThrough.directory, logger: logger)
                return
            }
            let ending = try await serve(handler, spoolDirectory: handler.spoolDirectory, logger: logger)
            // The go command has every answer; end the protocol stream so it goes on while uploads
            // drain and the budget is applied.
            let devNull = open("/dev/null", O_WRONLY)
            if devNull >= 0 { dup2(devNull, 1) }
            await handler.endRun(closed: ending == .closed, logger: logger)
        }
    
        private func keepBytes() throws -> Int64 {
            try ByteSize.setting(keepDecompressed, variable: "CHUNKCACHE_KEEP_DECOMPRESSED", fallback: 0)
        }

        /// The recompression level in effect, nil for none.
        private func recompressionLevel() throws -> Int32? {
            let chosen = try setting(recompressLevel, variable: "CHUNKCACHE_RECOMPRESS_LEVEL", what: "a number") ?? 15
            guard (0...19).contains(chosen) else { throw ValidationError("--recompress-level must be in 0...19 (0 for none), not \(chosen)") }
            return chosen == 0 ? nil : chosen
        }

        private func backgroundCPUShare() throws -> Double {
            let share = try setting(backgroundCpu, variable: "CHUNKCACHE_BACKGROUND_CPU", what: "a number") ?? 1
            guard share.isFinite, share >= 0 else { throw ValidationError("--background-cpu must be a number ≥ 0, not \(share)") }
            return share
        }

        private func liveInMemoryBytes() throws -> Int64 {
            try ByteSize.setting(liveInMemory, variable: "CHUNKCACHE_LIVE_IN_MEMORY", fallback: 1 << 30)
        }

        private func serve(_ handler: some CacheHandler, spoolDirectory: String, logger: Logger) async throws -> CacheServer.Ending {
            let metrics = ServerMetrics()
            let server = CacheServer(
                handler: handler, middleware: [LoggingMiddleware(), MetricsMiddleware(metrics: metrics)],
                configuration: .init(spoolDirectory: spoolDirectory), logger: logger)
            let ending = try await server.runOverStandardStreams(capabilitiesSent: true)
            logger.debug("served (\(ending)):\n\(metrics.summary())")
            return ending
        }
    }
}
