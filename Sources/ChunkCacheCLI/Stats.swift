import ArgumentParser
import ChunkCache
import ChunkStore
import FileIO

#if canImport(Glibc)
import Glibc
#endif

extension ChunkCacheCommand {
    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what the store holds and what it saves.")

        @OptionGroup var store: StoreOptions

        @Flag(help: "Print JSON instead of text.")
        var json = false

        @Option(help: ArgumentHelp("Show the last N runs (builds served) instead: when, how long, hits, misses, puts, bytes served and stored, errors, go version.", valueName: "n"))
        var runs: Int?

        func validate() throws {
            if let runs, runs < 1 { throw ValidationError("--runs takes a number of runs, 1 or more") }
        }

        func run() throws {
            let chunkStore = try ChunkStore(directory: try store.resolvedDirectory, opening: .existingOnly)
            if let runs {
                let records = RunHistory(store: chunkStore).last(runs)
                print(json ? runsJSON(records) : runsTable(records))
                return
            }
            let all = CacheStatistics(of: chunkStore)
            let stats = all.store
            // Live files in memory belong to this user's runs of every store (one memory root).
            let liveInMemory = FileSystem.allocatedSize(of: LiveFiles.memoryRootPath())
            if json {
                print(jsonObject(all, adding: [
                    "dedupRatio": "\(stats.dedupRatio)", "compressionRatio": "\(stats.compressionRatio)", "liveBytesInMemory": "\(liveInMemory)",
                    "version": "\"\(BuildInfo.description)\"",
                ]))
                return
            }
            let size = Formatting.bytes
            let saved = stats.logicalBytes > 0 ? Double(stats.diskBytes) / Double(stats.logicalBytes) : 0
            print("""
                chunkcache       \(BuildInfo.description)
                outputs          \(stats.outputs) (\(stats.inlineOutputs) inline)
                logical size     \(size(stats.logicalBytes))
                unique size      \(size(stats.uniqueBytes))  (dedup \(Formatting.fixed(stats.dedupRatio, digits: 2))x)
                stored size      \(size(stats.storedBytes))  (compression \(Formatting.fixed(stats.compressionRatio, digits: 2))x)
                chunks           \(stats.uniqueChunks) unique, \(stats.chunkReferences) references
                packs            \(stats.packFiles), \(size(stats.packBytes))
                pending          \(stats.pendingPackFiles) packs, \(size(stats.pendingPackBytes)) awaiting recompression
                dictionaries     \(stats.dictionaries), \(size(stats.dictionaryBytes))
                on disk          \(size(stats.diskBytes))  (\(Formatting.fixed(saved, digits: 3)) of logical)
                live files       \(size(all.liveBytes)) on disk, \(size(liveInMemory)) in memory (all of this user's stores)
                kept files       \(size(all.keptBytes))
                by codec         \(stats.storedBytesByCodec.sorted { $0.key < $1.key }.map { "\($0.key) \(size($0.value))" }.joined(separator: ", "))
                hits / misses    \(all.hits) / \(all.misses)
                puts             \(stats.puts)
                damaged          \(stats.damaged)
                evictions        \(stats.evictions)
                prefetch         \(all.prefetched) outputs made ahead, \(all.prefetchUsed) of them asked for
                remote           \(all.remoteHits) hits, \(all.remoteErrors) errors, \(size(all.remoteBytesDownloaded)) down, \(size(all.remoteBytesUploaded)) up
                last trim        \(stats.lastTrim.map { utcText($0) } ?? "never")
                """)
        }
    }
}

/// Runs as a table, oldest first.
private func runsTable(_ records: [RunRecord]) -> String {
    guard !records.isEmpty else { return "no runs recorded" }
    func seconds(_ duration: Duration) -> String { Formatting.fixed(duration.inSeconds, digits: 1) + " s" }
    let header = ["started", "served", "after", "hits", "misses", "puts", "served", "stored", "errors", "go"]
    let rows = records.map { run in
        [
            utcText(run.start), seconds(run.served), seconds(run.after), "\(run.hits)", "\(run.misses)", "\(run.puts)",
            Formatting.bytes(run.bytesServed), Formatting.bytes(run.bytesStored), "\(run.errors)", run.goVersion.isEmpty ? "?" : run.goVersion,
        ]
    }
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max()! }
    return ([header] + rows).map { row in
        row.indices.map { column in
            let pad = String(repeating: " ", count: widths[column] - row[column].count)
            return column == 0 || column == row.count - 1 ? row[column] + pad : pad + row[column]
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}

/// Runs as a JSON array of objects, oldest first. The version strings hold only characters that
/// need no escaping (letters, digits, dots, dashes, parentheses, spaces).
private func runsJSON(_ records: [RunRecord]) -> String {
    let objects = records.map { run in
        """
          {"start": "\(utcText(run.start))", "startNanoseconds": \(run.start.nanosecondsSinceEpoch), "servedMilliseconds": \(run.served.wholeMilliseconds), \
        "afterMilliseconds": \(run.after.wholeMilliseconds), "hits": \(run.hits), "misses": \(run.misses), "puts": \(run.puts), \
        "bytesServed": \(run.bytesServed), "bytesStored": \(run.bytesStored), "errors": \(run.errors), \
        "goVersion": \(run.goVersion.isEmpty ? "null" : "\"\(run.goVersion)\""), "version": "\(run.version)"}
        """
    }
    return "[\n" + objects.joined(separator: ",\n") + "\n]"
}

/// The statistics as a JSON object with sorted keys: every stored property (numbers, and
/// objects of numbers), plus `extra` members given as JSON text. Keys are Swift property names
/// and codec names, which need no escaping.
/// The statistics as one flat JSON object (the store's fields and serving's side by side, as
/// before they were split), with `extra` members.
private func jsonObject(_ stats: CacheStatistics, adding extra: [String: String]) -> String {
    func value(_ any: Any, indent: String) -> String {
        switch any {
        case let number as any BinaryInteger: return "\(number)"
        case let number as Double: return "\(number)"
        // A time, in nanoseconds since the epoch; 0 for never.
        case let time as Timestamp: return "\(time.nanosecondsSinceEpoch)"
        case let time as Timestamp?: return "\(time?.nanosecondsSinceEpoch ?? 0)"
        case let object as [String: Int64]:
            guard !object.isEmpty else { return "{}" }
            let members = object.sorted { $0.key < $1.key }.map { "\(indent)  \"\($0.key)\" : \($0.value)" }
            return "{\n" + members.joined(separator: ",\n") + "\n\(indent)}"
        default: return "null"  // the statistics hold nothing else
        }
    }
    var members = extra
    for child in Array(Mirror(reflecting: stats.store).children) + Array(Mirror(reflecting: stats).children) where child.label != "store" {
        if let label = child.label { members[label] = value(child.value, indent: "  ") }
    }
    return "{\n" + members.sorted { $0.key < $1.key }.map { "  \"\($0.key)\" : \($0.value)" }.joined(separator: ",\n") + "\n}"
}
