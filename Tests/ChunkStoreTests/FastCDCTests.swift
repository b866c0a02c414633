import ChunkStore
import Digests
import Testing

@Suite("FastCDC chunking")
struct FastCDCTests {
    let chunker = FastCDC(averageSize: 16 << 10)

    func digests(_ data: [UInt8]) -> [SHA256Digest] {
        data.withUnsafeBytes { raw in chunker.chunks(of: raw).map { SHA256.hash(UnsafeRawBufferPointer(rebasing: raw[$0])) } }
    }

    @Test("chunks cover the input in order, within the size bounds")
    func bounds() {
        let data = pseudoRandomBytes(2 << 20, seed: 1)
        let ranges = data.withUnsafeBytes { chunker.chunks(of: $0) }
        #expect(ranges.first?.lowerBound == 0)
        #expect(ranges.last?.upperBound == data.count)
        for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
        for range in ranges.dropLast() { #expect((chunker.minSize...chunker.maxSize).contains(range.count)) }
        let mean = data.count / ranges.count
        #expect(mean > chunker.averageSize / 2 && mean < chunker.averageSize * 2, "mean chunk \(mean)")
    }

    @Test("an insertion shifts only the boundaries near it")
    func insertionIsLocal() {
        let original = pseudoRandomBytes(1 << 20, seed: 2)
        var edited = original
        edited.insert(contentsOf: Array("a new function".utf8), at: 300_000)
        let before = digests(original)
        let after = Set(digests(edited))
        let kept = before.filter { after.contains($0) }.count
        #expect(kept >= before.count - 2, "kept \(kept) of \(before.count) chunks")
    }

    @Test("boundaries are the same in every run and version (the gear table is fixed)")
    func stableBoundaries() {
        let data = pseudoRandomBytes(200_000, seed: 42)
        let cuts = data.withUnsafeBytes { chunker.chunks(of: $0) }.map(\.upperBound)
        #expect(cuts == Self.recordedCuts)
    }

    /// Recorded when the chunker was written; a change here means stored chunks stop matching.
    static let recordedCuts = [17536, 37083, 53634, 68306, 84775, 102834, 123612, 145275, 151748, 174836, 193030, 200000]

    @Test("inputs up to the minimum size are one chunk")
    func smallInputs() {
        for size in [0, 1, 100, chunker.minSize] {
            let data = pseudoRandomBytes(size, seed: 3)
            #expect(data.withUnsafeBytes { chunker.chunks(of: $0) }.count == (size == 0 ? 0 : 1))
        }
    }
}
