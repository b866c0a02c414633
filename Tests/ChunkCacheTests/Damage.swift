import FileIO

/// Damages every pack of the store at `store`: one byte in each thousand flipped, so that every
/// chunk record of a test's outputs is corrupt.
func damagePacks(of store: String) throws {
    let packs = store + "/packs"
    for name in try FileSystem.contentsOfDirectory(packs) where name.hasSuffix(".pack") {
        var bytes = try FileSystem.readFile(packs + "/" + name)
        for i in stride(from: 100, to: bytes.count, by: 1000) { bytes[i] ^= 0xFF }
        try FileSystem.writeFileAtomically(packs + "/" + name, bytes)
    }
}
