/// Content-defined chunking, FastCDC 2020 (Xia et al.): a gear rolling hash, cut-point skipping
/// below the minimum size, and normalized chunking (level 2) that pulls sizes toward the average.
///
/// Boundaries depend only on nearby content, so an insertion moves only the boundaries near it,
/// and identical content yields identical chunks across outputs, builds and branches. The gear
/// table is fixed: changing it (or the sizes) would stop new chunks from matching stored ones.
public struct FastCDC: Sendable, Hashable {
    /// No chunk is shorter, except the last of an input.
    public let minSize: Int
    /// The size chunks tend to.
    public let averageSize: Int
    /// No chunk is longer.
    public let maxSize: Int
    private let smallMask: UInt64  // before the average: harder to match
    private let largeMask: UInt64  // after it: easier

    /// Chunks of `averageSize` (a power of two), at least a quarter and at most four times that.
    public init(averageSize: Int = 16 << 10) {
        self.init(minSize: averageSize / 4, averageSize: averageSize, maxSize: averageSize * 4)
    }

    public init(minSize: Int, averageSize: Int, maxSize: Int) {
        precondition(minSize >= 64 && minSize <= averageSize && averageSize <= maxSize, "invalid FastCDC sizes")
        self.minSize = minSize
        self.averageSize = averageSize
        self.maxSize = maxSize
        let bits = Int.bitWidth - 1 - averageSize.leadingZeroBitCount  // log2, rounded down
        // The top bits of a left-shifting gear hash depend on the most bytes: test those.
        smallMask = ~UInt64(0) << UInt64(64 - (bits + 2))
        largeMask = ~UInt64(0) << UInt64(64 - (bits - 2))
    }

    /// The length of the first chunk of `data`. When `data` holds fewer than `maxSize` bytes and
    /// more may follow, the caller must read more first, unless this is the end of the input.
    public func firstChunkLength(_ data: UnsafeRawBufferPointer) -> Int {
        var n = data.count
        if n <= minSize { return n }
        if n > maxSize { n = maxSize }
        let normal = min(n, averageSize)
        let bytes = data.bindMemory(to: UInt8.self)
        return gearTable.withUnsafeBufferPointer { gear in
            var hash: UInt64 = 0
            var i = minSize
            while i < normal {
                hash = (hash &<< 1) &+ gear[Int(bytes[i])]
                if hash & smallMask == 0 { return i + 1 }
                i += 1
            }
            while i < n {
                hash = (hash &<< 1) &+ gear[Int(bytes[i])]
                if hash & largeMask == 0 { return i + 1 }
                i += 1
            }
            return n
        }
    }

    /// The chunk boundaries of all of `data`, as ranges that cover it in order.
    public func chunks(of data: UnsafeRawBufferPointer) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        while start < data.count {
            let length = firstChunkLength(UnsafeRawBufferPointer(rebasing: data[start...]))
            ranges.append(start..<start + length)
            start += length
        }
        return ranges
    }
}

/// 256 fixed pseudo-random words (SplitMix64 from a fixed seed), one per byte value.
private let gearTable: [UInt64] = {
    var state: UInt64 = 0x6368_756E_6B63_6163  // "chunkcac"
    return (0..<256).map { _ in
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}()
