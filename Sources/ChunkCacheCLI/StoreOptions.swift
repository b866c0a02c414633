import ArgumentParser
import ChunkStore
import FileIO

#if canImport(Glibc)
import Glibc
#endif

/// Options every subcommand shares: where the store is.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The store directory (default: $CHUNKCACHE_DIR, else $XDG_CACHE_HOME/chunkcache, else ~/.cache/chunkcache).", valueName: "dir"))
    var dir: String?

    /// The store directory to use.
    var resolvedDirectory: String {
        get throws {
            if let dir, !dir.isEmpty { return dir }
            if let value = environment("CHUNKCACHE_DIR") { return value }
            if let value = environment("XDG_CACHE_HOME") { return value + "/chunkcache" }
            if let value = environment("HOME") { return value + "/.cache/chunkcache" }
            throw ValidationError("no store directory: pass --dir, or set CHUNKCACHE_DIR or HOME")
        }
    }
}
