import ArgumentParser
import ChunkStore
import FileIO
import Foundation

extension ChunkCacheCommand {
    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what the store holds and what it saves.")

        @OptionGroup var store: StoreOptions

        @Flag(help: "Print JSON instead of text.")
        var json = false

        func run() throws {
            let stats = try ChunkStore(directory: try store.resolvedDirectory).statistics()
            // Live files in memory belong to this user's runs of every store (one /dev/shm root).
            let liveInMemory = FileSystem.allocatedSize(of: "/dev/shm/chunkcache-\(getuid())")
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                var object = try JSONSerialization.jsonObject(with: encoder.encode(stats)) as! [String: Any]
                object["dedupRatio"] = stats.dedupRatio
                object["compressionRatio"] = stats.compressionRatio
                object["liveBytesInMemory"] = liveInMemory
                let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            let size = format
            let saved = stats.logicalBytes > 0 ? Double(stats.diskBytes) / Double(stats.logicalBytes) : 0
            print("""
                outputs          \(stats.outputs) (\(stats.inlineOutputs) inline)
                logical size     \(size(stats.logicalBytes))
                unique size      \(size(stats.uniqueBytes))  (dedup \(String(format: "%.2f", stats.dedupRatio))x)
                stored size      \(size(stats.storedBytes))  (compression \(String(format: "%.2f", stats.compressionRatio))x)
                chunks           \(stats.uniqueChunks) unique, \(stats.chunkReferences) references
                packs            \(stats.packFiles), \(size(stats.packBytes))
                dictionaries     \(stats.dictionaries), \(size(stats.dictionaryBytes))
                on disk          \(size(stats.diskBytes))  (\(String(format: "%.3f", saved)) of logical)
                live files       \(size(stats.liveBytes)) on disk, \(size(liveInMemory)) in memory (all of this user's stores)
                kept files       \(size(stats.keptBytes))
                by codec         \(stats.storedBytesByCodec.sorted { $0.key < $1.key }.map { "\($0.key) \(size($0.value))" }.joined(separator: ", "))
                hits / misses    \(stats.hits) / \(stats.misses)
                puts             \(stats.puts)
                damaged          \(stats.damaged)
                evictions        \(stats.evictions)
                remote           \(stats.remoteHits) hits, \(stats.remoteErrors) errors, \(size(stats.remoteBytesDownloaded)) down, \(size(stats.remoteBytesUploaded)) up
                last trim        \(stats.lastTrim == 0 ? "never" : Date(timeIntervalSince1970: Double(stats.lastTrim) / 1e9).description)
                """)
        }
    }
}
