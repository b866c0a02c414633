import CZstd
import Synchronization

/// A zstd dictionary trained on a store's own chunks.
///
/// Chunks are compressed one by one (so any one can be read alone), and 16 KiB is too little
/// for zstd to learn what Go outputs look like; a dictionary of their common strings and
/// statistics, trained once per store, makes every chunk compressed with it about a tenth
/// smaller at the levels recompression uses (measured in BENCHMARKS.md). A zstd frame names the
/// dictionary it needs by ID, so records need no other mark, and a chunk whose dictionary is gone
/// fails to decode: a miss, never a wrong output.
public struct CompressionDictionary: Hashable, Sendable {
    /// The ID zstd writes into every frame compressed with it (derived from its content).
    public let id: UInt32
    /// The dictionary, in zstd's format.
    public let bytes: [UInt8]

    /// Wraps `bytes` if they are a zstd dictionary.
    public init?(bytes: [UInt8]) {
        let id = bytes.withUnsafeBytes { ZDICT_getDictID($0.baseAddress, $0.count) }
        guard id != 0 else { return nil }
        self.id = id
        self.bytes = bytes
    }

    /// Samples enough for a useful dictionary (zstd suggests about a hundred times its size).
    public static let sampleBytesWanted = 8 << 20
    /// Less than this is too little to learn from.
    public static let sampleBytesNeeded = 1 << 20

    /// Trains a dictionary of at most `capacity` bytes on `samples`, the concatenation of
    /// pieces whose lengths are `sizes`. Nil if zstd finds too little to learn.
    public static func train(samples: [UInt8], sizes: [Int], capacity: Int = 110 << 10) -> CompressionDictionary? {
        guard samples.count >= sampleBytesNeeded, !sizes.isEmpty else { return nil }
        var dictionary = [UInt8](repeating: 0, count: capacity)
        // fastCover with segments of 1,000 bytes: on Go outputs, its own choice (tuned for zstd-3)
        // was 50-byte segments and an 18 KiB dictionary, which saved 2.6 % less at zstd-15.
        var parameters = ZDICT_fastCover_params_t()
        parameters.k = 1000
        parameters.d = 8
        parameters.f = 20
        parameters.splitPoint = 1.0
        parameters.accel = 1
        parameters.zParams.compressionLevel = 15
        let written = dictionary.withUnsafeMutableBytes { out in
            samples.withUnsafeBytes { input in
                sizes.withUnsafeBufferPointer {
                    ZDICT_trainFromBuffer_fastCover(out.baseAddress, out.count, input.baseAddress, $0.baseAddress, UInt32($0.count), parameters)
                }
            }
        }
        guard ZDICT_isError(written) == 0 else { return nil }
        return CompressionDictionary(bytes: Array(dictionary[..<written]))
    }
}

/// A dictionary digested by zstd: one decompression dictionary, and a compression dictionary per
/// level (each costs time to build, so they are built once and reused).
///
/// `@unchecked Sendable`: zstd's CDict and DDict are read-only once created and documented as
/// shareable by any number of threads at once; the map of compression dictionaries is behind a
/// mutex, and the C objects are freed only in `deinit`, when no one can use them.
final class DigestedDictionary: @unchecked Sendable {
    let dictionary: CompressionDictionary
    let decompression: OpaquePointer
    private let compression = Mutex<[Int32: OpaquePointer]>([:])

    init?(_ dictionary: CompressionDictionary) {
        guard let ddict = dictionary.bytes.withUnsafeBytes({ ZSTD_createDDict($0.baseAddress, $0.count) }) else { return nil }
        self.dictionary = dictionary
        self.decompression = ddict
    }

    deinit {
        ZSTD_freeDDict(decompression)
        compression.withLock { $0.values.forEach { ZSTD_freeCDict($0) } }
    }

    /// The compression dictionary for `level`.
    func forCompression(level: Int32) -> OpaquePointer? {
        compression.withLock { built in
            if let cdict = built[level] { return cdict }
            let cdict = dictionary.bytes.withUnsafeBytes { ZSTD_createCDict($0.baseAddress, $0.count, level) }
            built[level] = cdict
            return cdict
        }
    }
}
