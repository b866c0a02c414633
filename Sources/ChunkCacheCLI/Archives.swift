import ArgumentParser
import ChunkStore
import FileIO

extension ChunkCacheCommand {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the store's outputs into one archive file, for CI cache save/restore.",
            discussion: """
                With --base, writes only what that archive lacks: a feature branch's cache as a small \
                delta over main's. Restore with `chunkcache import BASE DELTA`.
                """)

        @OptionGroup var store: StoreOptions

        @Argument(help: ArgumentHelp("The archive to write (replaced atomically).", valueName: "file"))
        var file: String

        @Option(help: ArgumentHelp("Only outputs used within this long, e.g. 7d.", valueName: "age"))
        var usedWithin: Age?

        @Option(help: ArgumentHelp("An archive whose contents to leave out.", valueName: "archive"))
        var base: String?

        func run() throws {
            let line = ProgressLine("exporting", items: "outputs")
            let report = try ChunkStore(directory: try store.resolvedDirectory, opening: .existingOnly)
                .exportArchive(to: file, usedWithin: usedWithin?.duration, base: base, progress: line.update)
            line.finish()
            print("exported \(report.manifests) outputs, \(report.chunks) chunks: \(Formatting.bytes(report.bytes))")
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Merge archives into the store, deduplicating on the way.",
            discussion: "Each archive is checked in full first; a bad, truncated or tampered archive is refused and the store is left unchanged.")

        @OptionGroup var store: StoreOptions

        @Argument(help: ArgumentHelp("Archives, base first.", valueName: "file"))
        var files: [String]

        func validate() throws {
            if files.isEmpty { throw ValidationError("name at least one archive") }
        }

        func run() throws {
            let line = ProgressLine("importing", items: "archive passes")
            let report = try ChunkStore(directory: try store.resolvedDirectory).importArchives(files, progress: line.update)
            line.finish()
            print("imported \(report.manifests) outputs, \(report.chunks) new chunks" + (report.incomplete > 0 ? "; \(report.incomplete) outputs left out: their chunks are in no archive given (a delta without its base?)" : ""))
        }
    }
}
