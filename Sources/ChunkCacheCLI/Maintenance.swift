import ArgumentParser
import ChunkStore
import FileIO

#if canImport(Glibc)
import Glibc
#endif

extension ChunkCacheCommand {
    struct Trim: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply the store's budget now: drop old outputs, evict down to 90 % of --max-size.",
            discussion: "Runs safely beside builds using the store. chunkcache also does this when a run ends over budget, and once a day.")

        @OptionGroup var store: StoreOptions
        @OptionGroup var budget: BudgetOptions

        func run() throws {
            let directory = try store.resolvedDirectory
            let limits = try budget.resolved(for: directory)
            let chunkStore = try ChunkStore(directory: directory, opening: .existingOnly)
            let line = ProgressLine("trimming", items: "packs")
            let report = try chunkStore.trim(maxSize: limits.maxSize, maxAge: limits.maxAge, progress: line.update)
            line.finish()
            try chunkStore.counters.flush()
            print("""
                expired \(report.expired), evicted \(report.evicted) outputs; \(report.garbage.chunksRemoved) chunks and \
                \(report.garbage.packsRemoved + report.garbage.packsCompacted + report.garbage.packsMerged) packs collected; on disk \(Formatting.bytes(report.bytesBefore)) → \
                \(Formatting.bytes(report.bytesAfter)) (freed \(Formatting.bytes(max(0, report.bytesBefore - report.bytesAfter))))
                """)
        }
    }

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Remove chunks no output uses and reclaim space in pack files.",
            discussion: "Safe beside running builds: puts wait while it runs, and packs still being written are left alone.")

        @OptionGroup var store: StoreOptions

        func run() throws {
            let line = ProgressLine("collecting", items: "packs")
            let report = try ChunkStore(directory: try store.resolvedDirectory, opening: .existingOnly).collectGarbage(progress: line.update)
            line.finish()
            print("removed \(report.chunksRemoved) chunks, \(report.packsRemoved) empty packs, compacted \(report.packsCompacted) packs, merged \(report.packsMerged) small ones; freed \(Formatting.bytes(report.bytesFreed))")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every stored byte against its hash, and every output against its chunks.",
            discussion: """
                Reads every distinct chunk back once and checks it against its SHA-256, then checks \
                that every output's chunks are all there, of the right sizes, adding up to the output. \
                The time grows with the bytes stored, not with the outputs' sum. With --full, every \
                output is also re-read whole and checked against its output ID, as a get would read it. \
                Exits 0 if the store is healthy, 1 if anything is damaged. With --repair, damaged \
                entries are set aside so they become misses (the go command then rebuilds them).
                """)

        @OptionGroup var store: StoreOptions

        @Flag(help: "Set damaged entries aside.")
        var repair = false

        @Flag(help: "Re-read every output whole and check it against its output ID.")
        var full = false

        func run() throws {
            let chunkStore = try ChunkStore(directory: try store.resolvedDirectory, opening: .existingOnly)
            let line = ProgressLine("verifying", items: full ? "outputs" : "chunks")
            let report = try chunkStore.verify(repair: repair, full: full, progress: line.update)
            line.finish()
            if repair { try chunkStore.counters.flush() }  // without --repair, verify writes nothing
            for (key, reason) in report.damaged { print("damaged \(key): \(reason)") }
            let chunks = full ? "" : " (\(report.chunksChecked) chunks)"
            print("checked \(report.checked) outputs\(chunks): \(report.damaged.count) damaged\(repair ? ", \(report.repaired) set aside" : "")")
            if !report.isHealthy && !repair { throw ExitCode(1) }
        }
    }
}

