import CZlib
import CZstd
import Synchronization

/// How a stored chunk's bytes are encoded. Each stored chunk records its codec, so a store
/// written with one setting reads with any other.
public enum Codec: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Stored as is (incompressible data).
    case raw = 0
    /// Zstandard.
    case zstd = 1
    /// zlib (deflate with a zlib header).
    case zlib = 2

    public var description: String {
        switch self {
        case .raw: "raw"
        case .zstd: "zstd"
        case .zlib: "zlib"
        }
    }

    /// The codec named `name` ("zstd", "zlib" or "raw").
    public init?(name: String) {
        guard let codec = Codec.allCases.first(where: { $0.description == name }) else { return nil }
        self = codec
    }
}

/// Data that failed to decode.
public struct CorruptData: Error, CustomStringConvertible {
    public let description: String
}

/// Compresses with a chosen codec and level; decompresses any codec. Reuses zstd contexts,
/// which are costly to create, from a small pool. Safe to use from many tasks at once.
public final class Compressor: Sendable {
    /// The codec new data is written with.
    public let codec: Codec
    /// Its level (zstd 1...19, zlib 1...9).
    public let level: Int32

    private let compressionContexts = Mutex<[ZstdContext]>([])
    private let decompressionContexts = Mutex<[ZstdContext]>([])

    public init(codec: Codec = .zstd, level: Int32? = nil) {
        self.codec = codec
        self.level = level ?? (codec == .zlib ? 6 : 3)
    }

    deinit {
        compressionContexts.withLock { $0.forEach { ZSTD_freeCCtx($0.pointer) } }
        decompressionContexts.withLock { $0.forEach { ZSTD_freeDCtx($0.pointer) } }
    }

    /// Compresses `input`, appending to `output`. Returns the codec used: `.raw` (with `input`
    /// copied) when compression would not save at least 1/32 of it.
    public func compress(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) -> Codec {
        let start = output.count
        let worthIt = input.count - input.count / 32
        switch codec {
        case .zstd:
            let bound = ZSTD_compressBound(input.count)
            output.append(contentsOf: repeatElement(0, count: bound))
            let context = compressionContexts.withLock { $0.popLast() } ?? ZstdContext(pointer: ZSTD_createCCtx()!)
            let written = output.withUnsafeMutableBytes { out in
                ZSTD_compressCCtx(context.pointer, out.baseAddress! + start, bound, input.baseAddress, input.count, level)
            }
            compressionContexts.withLock { $0.append(context) }
            if ZSTD_isError(written) == 0, written < worthIt {
                output.removeLast(bound - written)
                return .zstd
            }
        case .zlib:
            var bound = compressBound(uLong(input.count))
            output.append(contentsOf: repeatElement(0, count: Int(bound)))
            let status = output.withUnsafeMutableBytes { out in
                compress2(out.baseAddress!.assumingMemoryBound(to: Bytef.self) + start, &bound,
                          input.baseAddress?.assumingMemoryBound(to: Bytef.self), uLong(input.count), level)
            }
            if status == Z_OK, Int(bound) < worthIt {
                output.removeLast(output.count - start - Int(bound))
                return .zlib
            }
        case .raw:
            break
        }
        output.removeLast(output.count - start)
        output.append(contentsOf: input)
        return .raw
    }

    /// Decodes `input` (written with `codec`) into exactly `rawSize` bytes at `output`.
    public func decompress(_ input: UnsafeRawBufferPointer, codec: Codec, into output: UnsafeMutableRawBufferPointer) throws {
        switch codec {
        case .raw:
            guard input.count == output.count else { throw CorruptData(description: "raw chunk has \(input.count) bytes, expected \(output.count)") }
            output.copyMemory(from: input)
        case .zstd:
            let context = decompressionContexts.withLock { $0.popLast() } ?? ZstdContext(pointer: ZSTD_createDCtx()!)
            defer { decompressionContexts.withLock { $0.append(context) } }
            let written = ZSTD_decompressDCtx(context.pointer, output.baseAddress, output.count, input.baseAddress, input.count)
            guard ZSTD_isError(written) == 0, written == output.count else {
                throw CorruptData(description: "zstd chunk does not decode to \(output.count) bytes")
            }
        case .zlib:
            var length = uLong(output.count)
            let status = uncompress(output.baseAddress?.assumingMemoryBound(to: Bytef.self), &length,
                                    input.baseAddress?.assumingMemoryBound(to: Bytef.self), uLong(input.count))
            guard status == Z_OK, Int(length) == output.count else {
                throw CorruptData(description: "zlib chunk does not decode to \(output.count) bytes")
            }
        }
    }
}

/// A zstd compression or decompression context.
///
/// `@unchecked Sendable`: a context is mutable C state, but `Compressor`'s pools hand each one to a
/// single task at a time (taken out under the lock, used, put back), so it is never shared.
private struct ZstdContext: @unchecked Sendable {
    let pointer: OpaquePointer
}
