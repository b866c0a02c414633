import ArgumentParser

@main
struct ChunkCacheCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chunkcache",
        abstract: "A Go build cache that stores outputs chunked, compressed and deduplicated.",
        discussion: """
            Set it as the go command's cache program; with no subcommand it serves GOCACHEPROG:

                go env -w GOCACHEPROG=chunkcache
                GOCACHEPROG="chunkcache --dir /var/cache/chunkcache" go build ./...

            The store is --dir, else $CHUNKCACHE_DIR, else $XDG_CACHE_HOME/chunkcache, else
            ~/.cache/chunkcache.
            """,
        version: "chunkcache \(BuildInfo.description)",
        subcommands: [Serve.self, Stats.self, Trim.self, GC.self, Verify.self, Export.self, Import.self],
        defaultSubcommand: Serve.self)
}
