import ArgumentParser
import CacheProg
import Logging

@main
struct CacheProgDiskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cacheprog-disk",
        abstract: "A plain on-disk Go build cache, served as a GOCACHEPROG.",
        discussion: """
            The go command starts it and talks to it over standard input and output:

                GOCACHEPROG="cacheprog-disk --dir /var/cache/go" go build ./...

            It is the example backend of the CacheProg library: one file per output, no
            compression. See chunkcache for the compressed, deduplicated store.
            """)

    @Option(help: ArgumentHelp("Cache directory (default: $CACHEPROG_DISK_DIR).", valueName: "dir"))
    var dir: String?

    @Flag(help: "Log every request to standard error.")
    var verbose = false

    func validate() throws {
        if resolvedDirectory == nil {
            throw ValidationError("no cache directory: pass --dir or set CACHEPROG_DISK_DIR")
        }
    }

    private var resolvedDirectory: String? {
        if let dir, !dir.isEmpty { return dir }
        if let value = getenv("CACHEPROG_DISK_DIR") { return String(cString: value) }
        return nil
    }

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = Logger(label: "cacheprog-disk")
        logger.logLevel = verbose ? .debug : .warning
        let cache = try DiskCache(directory: resolvedDirectory!)
        let server = CacheServer(
            handler: cache, middleware: [LoggingMiddleware()],
            configuration: .init(spoolDirectory: cache.spoolDirectory), logger: logger)
        _ = try await server.runOverStandardStreams()
    }
}

#if canImport(Glibc)
import Glibc
#endif
