import FileIO

/// Collects a put body while it is decoded: in memory up to a limit, in a file beyond it, so a
/// large body never sits whole in memory. If the file cannot be written (its disk is full), the
/// body is collected in memory after all: the go command treats a failed put as fatal in places
/// (`go list -export`), and the bytes are already in hand.
struct BodySpool {
    private enum Sink {
        case memory([UInt8])
        case file(FileDescriptor, path: String, written: Int)
        case failed(any Error)
    }

    private var sink: Sink
    private let size: Int64

    /// Prepares for a body of `size` bytes.
    init(size: Int64, inMemoryLimit: Int, spoolDirectory: String) {
        self.size = size
        if size <= Int64(inMemoryLimit) {
            var bytes = [UInt8]()
            bytes.reserveCapacity(Int(size))
            sink = .memory(bytes)
            return
        }
        let path = spoolDirectory + "/.body-" + FileSystem.uniqueSuffix() + ".tmp"
        do {
            sink = .file(try FileDescriptor.open(path, [.writeOnly, .create, .exclusive], permissions: 0o600), path: path, written: 0)
        } catch {
            sink = .memory([])
        }
    }

    /// Adds decoded bytes. A write error is kept and reported by `finish`; the rest of the body
    /// is still consumed so the stream stays in step.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        switch sink {
        case .memory(var buffer):
            sink = .failed(CancellationError())  // drop the reference so append does not copy
            buffer.append(contentsOf: bytes)
            sink = .memory(buffer)
        case .file(let descriptor, let path, let written):
            do {
                try descriptor.writeAll(bytes)
                sink = .file(descriptor, path: path, written: written + bytes.count)
            } catch {
                // Reading back what was written needs no space; the rest goes to memory.
                descriptor.close()
                let held = try? FileSystem.readFile(path)
                try? FileSystem.remove(path)
                if var held, held.count >= written {
                    held.removeLast(held.count - written)
                    held.append(contentsOf: bytes)
                    sink = .memory(held)
                } else {
                    sink = .failed(error)
                }
            }
        case .failed:
            break
        }
    }

    /// The complete body, or the error that kept it from being stored.
    func finish() throws -> PutBody {
        switch sink {
        case .memory(let bytes):
            return PutBody(bytes: bytes)
        case .file(let descriptor, let path, _):
            descriptor.close()
            return PutBody(file: path, size: size)
        case .failed(let error):
            throw error
        }
    }

    /// Throws the body away (the request was void).
    func discard() {
        if case .file(let descriptor, let path, _) = sink {
            descriptor.close()
            try? FileSystem.remove(path)
        }
    }
}
