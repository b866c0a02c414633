import ChunkStore
import FileIO
import Logging
import Synchronization

/// Says once per run that the store's disk is full, then only counts: a full disk fails every
/// write, and one warning per output (hundreds per build) buries what the user must do.
final class DiskFullReport: Sendable {
    private let store: ChunkStore
    /// What could not be done for lack of space: outputs not stored, and other work skipped.
    private let counts = Mutex<(outputs: Int, other: Int)>((0, 0))

    init(store: ChunkStore) {
        self.store = store
    }

    /// Logs "`what`: `error`", unless the error is the disk being full: that is said the first
    /// time only, and counted (as an output not stored, or as other work).
    func warn(_ what: String, _ error: any Error, output: Bool = false, logger: Logger) {
        guard ChunkStore.isOutOfSpace(error) else {
            logger.warning("\(what): \(error)")
            return
        }
        let first = counts.withLock { counts in
            defer { if output { counts.outputs += 1 } else { counts.other += 1 } }
            return counts.outputs + counts.other == 0
        }
        if first { logger.warning("\(message)") }
    }

    private var message: String {
        let space = try? FileSystem.space(at: store.directory)
        let free = space.map { "\(Formatting.bytes($0.available)) free of \(Formatting.bytes($0.total))" } ?? "no free space"
        return """
            chunkcache: the disk holding the store \(store.directory) is full (\(free); the store holds \
            \(Formatting.bytes(store.diskUsage))). Builds go on, but outputs are not stored until there is room. \
            Free some space, or shrink the store: `chunkcache trim --max-size SIZE`, or run with \
            --max-size (CHUNKCACHE_MAX_SIZE) below the free space.
            """
    }

    /// The count at the end of a run, if anything was lost to a full disk.
    func summary(logger: Logger) {
        let (outputs, other) = counts.withLock { $0 }
        guard outputs + other > 0 else { return }
        logger.warning("chunkcache: disk full: \(outputs) outputs not stored this run\(other > 0 ? ", \(other) other writes skipped" : "").")
    }
}
