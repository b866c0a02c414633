import ArgumentParser
import CacheProg
import CacheProgWire
import Digests
import FileIO

extension CacheProgLoadCommand {
    /// One huge output (a generated file, half random and half text-like), put in one run of
    /// the program and got back in another.
    struct Big: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put one huge generated output, then get it back.")

        @Option(help: "Size of the output, e.g. 1GiB or 4GiB.")
        var size: String

        @Option(help: ArgumentHelp("Where the generated output is kept (made if missing or of another size).", valueName: "path"))
        var file: String

        @Option(help: "put, get or both (a run each).")
        var only = "both"

        @Argument(parsing: .postTerminator, help: "The cache program and its arguments.")
        var program: [String] = []

        func validate() throws {
            guard CacheProgLoadCommand.byteCount(size).map({ $0 > 0 }) == true else { throw ValidationError("--size: cannot read \(size.debugDescription)") }
            guard ["put", "get", "both"].contains(only) else { throw ValidationError("--only: put, get or both") }
            guard !program.isEmpty else { throw ValidationError("no program: give it after --") }
        }

        func run() async throws {
            let bytes = CacheProgLoadCommand.byteCount(size)!
            try Self.generate(file, size: bytes)
            let action = ActionID(SHA256.hash(Array("cacheprog-load big \(bytes)".utf8)))
            // Hashed before the timed part, as the go command knows an output's ID when it puts it.
            let (digest, _) = try fileDigest(file)
            let outputID = OutputID(digest)
            if only != "get" {
                let (_, times) = try await session(program) { client in
                    _ = try await client.put(action, file: file, outputID: outputID)
                }
                report([
                    "command": "big-put", "bytes": bytes, "put_mb_s": Double(bytes) / 1e6 / times.requests.seconds,
                    "requests_s": times.requests.seconds, "close_s": times.close.seconds, "exit_s": times.exit.seconds,
                    "peak_rss_bytes": childrenPeakResidentBytes(),
                ])
            }
            if only != "put" {
                let (entry, times) = try await session(program) { client in
                    try await client.get(action)
                }
                guard let entry else { throw LoadFailure("the program missed the output it was given") }
                report([
                    "command": "big-get", "bytes": bytes, "get_mb_s": Double(bytes) / 1e6 / times.requests.seconds,
                    "requests_s": times.requests.seconds, "close_s": times.close.seconds, "exit_s": times.exit.seconds,
                    "peak_rss_bytes": childrenPeakResidentBytes(),
                ])
                guard entry.outputID == outputID, entry.size == bytes else { throw LoadFailure("the reply names another output") }
            }
        }

        /// Writes `size` bytes to `path` unless a file of that size is there: 1 MiB blocks,
        /// alternately random (incompressible) and text-like (16 letters, about 2× compressible),
        /// each block different, so neither compression nor deduplication makes it free.
        static func generate(_ path: String, size: Int64) throws {
            if let status = try FileSystem.statusIfExists(of: path), status.size == size { return }
            try FileSystem.createAtomically(path, permissions: 0o644) { descriptor in
                let block = 1 << 20
                var buffer = [UInt8](repeating: 0, count: block)
                let letters = Array("etaoinshrdlu \n.,".utf8)
                var offset: Int64 = 0
                var index: UInt64 = 0
                while offset < size {
                    var random = SplitMix64(seed: index &* 0x2545_F491_4F6C_DD1D)
                    buffer.withUnsafeMutableBytes { raw in
                        if index % 2 == 0 {
                            for word in 0..<(block / 8) { raw.storeBytes(of: random.next(), toByteOffset: word * 8, as: UInt64.self) }
                        } else {
                            for group in 0..<(block / 16) {
                                var bits = random.next()
                                for k in 0..<16 {
                                    raw[group * 16 + k] = letters[Int(bits & 15)]
                                    bits >>= 4
                                }
                            }
                        }
                    }
                    let count = Int(min(Int64(block), size - offset))
                    try buffer.withUnsafeBytes { try descriptor.writeAll(UnsafeRawBufferPointer(rebasing: $0[..<count]), at: offset) }
                    offset += Int64(count)
                    index += 1
                }
            }
        }
    }
}
