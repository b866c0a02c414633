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
public struct CorruptData: Error, CustomStringConvertible, Equatable {
    public let description: String

    /// Bytes decoded from a chunk that are not the chunk its hash names.
    public static let hashMismatch = CorruptData(description: "does not match its hash")
}

/// Compresses with a chosen codec and level; decompresses any codec. Reuses zstd contexts,
/// which are costly to create, from a small pool. Safe to use from many tasks at once.
///
/// zstd frames compressed with a dictionary name it; the compressor decodes them with the
/// dictionaries it was given (`add`) or finds through its `dictionarySource`.
public final class Compressor: Sendable {
    /// The codec new data is written with.
    public let codec: Codec
    /// Its level (zstd 1...19, zlib 1...9).
    public let level: Int32

    private let compressionContexts = Mutex<[ZstdContext]>([])
    private let decompressionContexts = Mutex<[ZstdContext]>([])
    private let dictionaries = Mutex<[UInt32: DigestedDictionary]>([:])
    private let dictionarySource: (@Sendable (UInt32) -> CompressionDictionary?)?

    /// `dictionarySource` is asked for a dictionary a frame needs that the compressor has not
    /// been given (a store's catalog, say, where another process may have added it).
    public init(codec: Codec = .zstd, level: Int32? = nil, dictionarySource: (@Sendable (UInt32) -> CompressionDictionary?)? = nil) {
        self.codec = codec
        self.level = level ?? (codec == .zlib ? 6 : 1)
        self.dictionarySource = dictionarySource
    }

    /// A compression context at this compressor's level, writing a checksum of its content
    /// (XXH64, 4 bytes) into every frame, which decoding checks: what lets a get skip SHA-256 of
    /// each chunk (see `decompress`).
    private func newCompressionContext() -> ZstdContext {
        let context = ZstdContext(pointer: ZSTD_createCCtx()!)
        ZSTD_CCtx_setParameter(context.pointer, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(context.pointer, ZSTD_c_checksumFlag, 1)
        return context
    }

    /// Makes `dictionary` available for compressing and decompressing. False if zstd rejects it.
    @discardableResult
    public func add(_ dictionary: CompressionDictionary) -> Bool {
        digested(dictionary) != nil
    }

    private func digested(_ dictionary: CompressionDictionary) -> DigestedDictionary? {
        dictionaries.withLock { known in
            if let existing = known[dictionary.id], existing.dictionary == dictionary { return existing }
            guard let digested = DigestedDictionary(dictionary) else { return nil }
            known[dictionary.id] = digested
            return digested
        }
    }

    /// The dictionary with zstd ID `id`: one given before, else one the source has.
    private func digested(id: UInt32) -> DigestedDictionary? {
        if let known = dictionaries.withLock({ $0[id] }) { return known }
        guard let found = dictionarySource?(id), found.id == id else { return nil }
        return digested(found)
    }

    deinit {
        compressionContexts.withLock { $0.forEach { ZSTD_freeCCtx($0.pointer) } }
        decompressionContexts.withLock { $0.forEach { ZSTD_freeDCtx($0.pointer) } }
    }

    /// The most bytes `compress(_:into:)` may write for `count` bytes of input.
    public func bound(_ count: Int) -> Int {
        switch codec {
        case .zstd: max(count, ZSTD_compressBound(count))
        case .zlib: max(count, Int(compressBound(uLong(count))))
        case .raw: count
        }
    }

    /// Compresses `input` into `output` (at least `bound(input.count)` bytes, need not be
    /// initialized). Returns the codec used, `.raw` (with `input` copied) when compression would
    /// not save at least 1/32 of it, and the bytes written. With `dictionary` (zstd only), the
    /// frame needs that dictionary to be decoded.
    public func compress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, dictionary: CompressionDictionary? = nil) -> (codec: Codec, count: Int) {
        precondition(output.count >= bound(input.count))
        let worthIt = input.count - input.count / 32
        switch codec {
        case .zstd:
            var context = compressionContexts.withLock { $0.popLast() } ?? newCompressionContext()
            // Parameters stick to a context between frames; only the dictionary may change.
            let owner = dictionary.flatMap { digested($0) }
            let cdict = owner?.forCompression(level: level)
            if cdict != context.dictionary {
                ZSTD_CCtx_refCDict(context.pointer, cdict)
                context.dictionary = cdict
            }
            let written = withExtendedLifetime(owner) {
                ZSTD_compress2(context.pointer, output.baseAddress, output.count, input.baseAddress, input.count)
            }
            compressionContexts.withLock { $0.append(context) }
            if ZSTD_isError(written) == 0, written < worthIt { return (.zstd, written) }
        case .zlib:
            var written = uLong(output.count)
            let status = compress2(output.baseAddress!.assumingMemoryBound(to: Bytef.self), &written,
                                   input.baseAddress?.assumingMemoryBound(to: Bytef.self), uLong(input.count), level)
            if status == Z_OK, Int(written) < worthIt { return (.zlib, Int(written)) }
        case .raw:
            break
        }
        if input.count > 0 { output.baseAddress!.copyMemory(from: input.baseAddress!, byteCount: input.count) }
        return (.raw, input.count)
    }

    /// Compresses `input`, appending to `output`; see `compress(_:into:)` for the codec chosen.
    public func compress(_ input: UnsafeRawBufferPointer, into output: inout [UInt8], dictionary: CompressionDictionary? = nil) -> Codec {
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: bound(input.count)))
        let (codec, count) = output.withUnsafeMutableBytes { compress(input, into: UnsafeMutableRawBufferPointer(rebasing: $0[start...]), dictionary: dictionary) }
        output.removeLast(output.count - start - count)
        return codec
    }

    /// Decodes `input` (written with `codec`) into exactly `output.count` bytes at `output`.
    /// Returns true if the codec itself checked the decoded bytes against a checksum stored with
    /// them (zstd frames written with one, as this compressor writes them), so that damage to the
    /// stored bytes cannot go unnoticed; false if only the caller can tell (raw data, zlib,
    /// zstd frames without a checksum).
    @discardableResult
    public func decompress(_ input: UnsafeRawBufferPointer, codec: Codec, into output: UnsafeMutableRawBufferPointer) throws -> Bool {
        switch codec {
        case .raw:
            guard input.count == output.count else { throw CorruptData(description: "raw chunk has \(input.count) bytes, expected \(output.count)") }
            output.copyMemory(from: input)
            return false
        case .zstd:
            let context = decompressionContexts.withLock { $0.popLast() } ?? ZstdContext(pointer: ZSTD_createDCtx()!)
            defer { decompressionContexts.withLock { $0.append(context) } }
            let written: Int
            let dictionaryID = ZSTD_getDictID_fromFrame(input.baseAddress, input.count)
            if dictionaryID == 0 {
                written = ZSTD_decompressDCtx(context.pointer, output.baseAddress, output.count, input.baseAddress, input.count)
            } else if let dictionary = digested(id: dictionaryID) {
                written = withExtendedLifetime(dictionary) {
                    ZSTD_decompress_usingDDict(context.pointer, output.baseAddress, output.count, input.baseAddress, input.count, dictionary.decompression)
                }
            } else {
                throw CorruptData(description: "zstd chunk needs dictionary \(dictionaryID), which is not in the store")
            }
            guard ZSTD_isError(written) == 0, written == output.count else {
                throw CorruptData(description: "zstd chunk does not decode to \(output.count) bytes")
            }
            return Self.hasContentChecksum(input)
        case .zlib:
            var length = uLong(output.count)
            let status = uncompress(output.baseAddress?.assumingMemoryBound(to: Bytef.self), &length,
                                    input.baseAddress?.assumingMemoryBound(to: Bytef.self), uLong(input.count))
            guard status == Z_OK, Int(length) == output.count else {
                throw CorruptData(description: "zlib chunk does not decode to \(output.count) bytes")
            }
            return false
        }
    }
}

extension Compressor {
    /// Whether a zstd frame stores a checksum of its content (RFC 8878: bit 2 of the frame header
    /// descriptor, the byte after the 4-byte magic number), which zstd verifies when decoding it.
    static func hasContentChecksum(_ frame: UnsafeRawBufferPointer) -> Bool {
        frame.count > 4 && UInt32(littleEndian: frame.loadUnaligned(as: UInt32.self)) == 0xFD2F_B528 && frame[4] & 0x04 != 0
    }
}

/// A zstd compression or decompression context.
///
/// `@unchecked Sendable`: a context is mutable C state, but `Compressor`'s pools hand each one to a
/// single task at a time (taken out under the lock, used, put back), so it is never shared.
private struct ZstdContext: @unchecked Sendable {
    let pointer: OpaquePointer
    /// The compression dictionary the context references (compression contexts only).
    var dictionary: OpaquePointer?
}
