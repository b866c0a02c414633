import CacheProg
import FileIO

/// The simplest useful backend: one file per output, one small record per action.
///
///     DIR/o/<output ID hex>   the body
///     DIR/a/<action ID hex>   "<output ID hex> <size> <put time in ns>"
///
/// Writes are atomic (temporary file, then rename), so concurrent processes sharing DIR and a
/// process killed mid-put never leave a partial file under a real name.
struct DiskCache: CacheHandler {
    let directory: String

    init(directory: String) throws {
        self.directory = FileSystem.absolutePath(directory)
        for sub in ["a", "o", "tmp"] { try FileSystem.createDirectories(self.directory + "/" + sub) }
    }

    var spoolDirectory: String { directory + "/tmp" }

    func get(_ actionID: ActionID, context: CacheContext) async throws -> CacheEntry? {
        guard let record = try? FileSystem.readFile(directory + "/a/" + actionID.hex) else { return nil }
        let fields = String(decoding: record, as: UTF8.self).split(separator: " ")
        guard fields.count == 3, let outputID = OutputID(hex: fields[0]), let size = Int64(fields[1]),
            let nanos = Int64(fields[2])
        else { return nil }
        let path = directory + "/o/" + outputID.hex
        // An output that vanished or changed size is a miss, never a wrong answer.
        guard let status = try? FileSystem.status(of: path), status.size == size else { return nil }
        return CacheEntry(outputID: outputID, size: size, time: Timestamp(nanosecondsSinceEpoch: nanos), diskPath: path)
    }

    func put(_ request: PutRequest, context: CacheContext) async throws -> String {
        let path = directory + "/o/" + request.outputID.hex
        if (try? FileSystem.status(of: path))?.size != request.body.size {
            switch request.body.storage {
            case .file(let spooled): try FileSystem.rename(spooled, to: path)
            case .bytes(let bytes): try FileSystem.writeFileAtomically(path, bytes, permissions: 0o644)
            }
        }
        let record = "\(request.outputID.hex) \(request.body.size) \(Timestamp.now.nanosecondsSinceEpoch)"
        try FileSystem.writeFileAtomically(directory + "/a/" + request.actionID.hex, Array(record.utf8))
        return path
    }
}
