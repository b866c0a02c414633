/// Deterministic pseudo-random bytes (SplitMix64 from `seed`), so failures reproduce. Shared by
/// the test suites.
public func pseudoRandomBytes(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var state = seed
    var words = [UInt64](repeating: 0, count: (count + 7) / 8)
    for index in words.indices {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        words[index] = z ^ (z >> 31)
    }
    return words.withUnsafeBytes { Array($0.prefix(count)) }
}
