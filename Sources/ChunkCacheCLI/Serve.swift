import ArgumentParser
import CacheProg
import ChunkCache
import ChunkStore
import Logging

extension ChunkCacheCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the go command as its GOCACHEPROG (the default).",
            discussion: "Speaks the protocol on standard input and output; logs go to standard error.")

        @OptionGroup var store: StoreOptions

        @Option(help: ArgumentHelp("Codec for new chunks: zstd or zlib. Stores read with either.", valueName: "codec"))
        var codec: String = "zstd"

        @Option(help: ArgumentHelp("Compression level (zstd 1-19, default 3; zlib 1-9, default 6).", valueName: "n"))
        var level: Int32?

        @Flag(help: "Log every request to standard error.")
        var verbose = false

        func validate() throws {
            guard let parsed = Codec(name: codec), parsed != .raw else {
                throw ValidationError("--codec must be zstd or zlib, not \(codec.debugDescription)")
            }
            if let level {
                let range: ClosedRange<Int32> = parsed == .zstd ? 1...19 : 1...9
                guard range.contains(level) else { throw ValidationError("--level for \(codec) must be in \(range.lowerBound)...\(range.upperBound)") }
            }
        }

        func run() async throws {
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
            var logger = Logger(label: "chunkcache")
            logger.logLevel = verbose ? .debug : .warning
            let chunkStore = try ChunkStore(
                directory: try store.resolvedDirectory,
                configuration: .init(codec: Codec(name: codec)!, level: level))
            let handler = try ChunkCacheHandler(store: chunkStore)
            let metrics = ServerMetrics()
            let server = CacheServer(
                handler: handler, middleware: [LoggingMiddleware(), MetricsMiddleware(metrics: metrics)],
                configuration: .init(spoolDirectory: handler.spoolDirectory), logger: logger)
            let ending = try await server.runOverStandardStreams()
            if ending == .endOfInput { handler.finish(logger: logger) }
            logger.debug("served (\(ending)):\n\(metrics.summary())")
        }
    }
}
