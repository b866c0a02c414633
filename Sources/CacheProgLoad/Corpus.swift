import CacheProgWire
import Digests
import FileIO

/// Real build outputs (the `-d` files of a Go build cache) and the model that turns them into
/// many distinct builds, as branches of one repository differ: every build has its own action
/// IDs; its outputs are the base ones with their build IDs changed, some with small sections
/// changed, a few rebuilt (spans inserted and removed, so chunk boundaries move), and a few new
/// outputs drawn from a second pool. Deterministic: build `v`, entry `i` is the same bytes in
/// every run, so a store can be grown in one run and read back in another.
struct Corpus: Sendable {
    struct Output: Sendable {
        let path: String
        let name: String
    }

    /// Outputs every build has (e.g. those of `go build std`).
    let base: [Output]
    /// Outputs builds add (e.g. those `go build cmd` adds); may be empty.
    let additions: [Output]

    init(base directory: String, additions: String?) throws {
        base = try Self.outputs(in: directory)
        guard !base.isEmpty else { throw LoadFailure("\(directory) holds no build outputs (files named *-d)") }
        let names = Set(base.map(\.name))
        self.additions = try additions.map { try Self.outputs(in: $0).filter { !names.contains($0.name) } } ?? []
    }

    /// The `*-d` files under `directory` (a Go build cache's layout), sorted by name.
    private static func outputs(in directory: String) throws -> [Output] {
        var found: [Output] = []
        for sub in try FileSystem.contentsOfDirectory(directory).sorted() {
            let path = directory + "/" + sub
            guard let status = try? FileSystem.status(of: path, followLinks: false), status.isDirectory else { continue }
            for name in try FileSystem.contentsOfDirectory(path).sorted() where name.hasSuffix("-d") {
                found.append(Output(path: path + "/" + name, name: name))
            }
        }
        return found
    }

    /// Entries that build `variant` adds beyond the base ones (none for build 0: one plain build).
    func additionCount(variant: Int) -> Int {
        variant == 0 || additions.isEmpty ? 0 : max(1, base.count / 50)
    }

    func entryCount(variant: Int) -> Int { base.count + additionCount(variant: variant) }

    /// The action ID and output of entry `index` of build `variant`.
    func entry(variant: Int, index: Int) throws -> (action: ActionID, body: [UInt8]) {
        let isAddition = index >= base.count
        let source = isAddition ? additions[(variant * 7919 + index - base.count) % additions.count] : base[index]
        var hasher = SHA256()
        hasher.update(Array("cacheprog-load \(variant) \(index) \(source.name)".utf8))
        let action = ActionID(hasher.finalize())
        var body = try FileSystem.readFile(source.path)
        guard variant > 0 else { return (action, body) }
        var random = SplitMix64(seed: action.digest.leadingWord)
        Self.stampBuildID(&body, with: action.digest)
        let roll = random.next() % 100
        if roll < 15 || isAddition {
            for _ in 0..<(1 + random.next() % 4) { Self.editSection(&body, &random) }
        } else if roll < 18 {
            Self.rebuild(&body, &random)
        }
        return (action, body)
    }

    /// Rewrites the text between the quotes of the first `build id "` marks (Go objects and
    /// archives carry the build ID near their start), keeping its length.
    static func stampBuildID(_ body: inout [UInt8], with digest: SHA256Digest) {
        let mark = Array("build id \"".utf8)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        let stamp = digest.bytes.map { alphabet[Int($0) & 63] }
        let limit = min(body.count, 64 << 10)
        var at = 0
        var stamped = 0
        while stamped < 2, at + mark.count < limit {
            guard body[at] == mark[0], body[at..<(at + mark.count)].elementsEqual(mark) else {
                at += 1
                continue
            }
            var position = at + mark.count
            var written = 0
            while position < body.count, body[position] != UInt8(ascii: "\""), body[position] != UInt8(ascii: "\n") {
                if body[position] != UInt8(ascii: "/") { body[position] = stamp[written % stamp.count] }
                position += 1
                written += 1
            }
            stamped += 1
            at = position
        }
    }

    /// Overwrites 16–256 bytes at a random place with bytes from elsewhere in the output, a few
    /// of them changed: a small edit that compresses as the output does.
    static func editSection(_ body: inout [UInt8], _ random: inout SplitMix64) {
        guard body.count >= 512 else { return }
        let length = 16 + Int(random.next() % 241)
        let to = Int(random.next() % UInt64(body.count - length))
        let from = Int(random.next() % UInt64(body.count - length))
        for k in 0..<length { body[to + k] = body[from + k] ^ (k % 16 == 0 ? UInt8(truncatingIfNeeded: random.next()) : 0) }
    }

    /// Inserts a span of 256 B–8 KiB (copied from elsewhere, lightly changed) and removes one
    /// of about that size elsewhere: a package whose code changed, so chunk boundaries move.
    static func rebuild(_ body: inout [UInt8], _ random: inout SplitMix64) {
        guard body.count >= 16 << 10 else {
            editSection(&body, &random)
            return
        }
        let length = 256 + Int(random.next() % 7937)
        let from = Int(random.next() % UInt64(body.count - length))
        var span = Array(body[from..<(from + length)])
        for k in stride(from: 0, to: span.count, by: 32) { span[k] ^= UInt8(truncatingIfNeeded: random.next()) }
        body.insert(contentsOf: span, at: Int(random.next() % UInt64(body.count)))
        let removed = 256 + Int(random.next() % 7937)
        let at = Int(random.next() % UInt64(body.count - removed))
        body.removeSubrange(at..<(at + removed))
    }
}

/// A small, fast, seedable generator (SplitMix64), so that builds are the same in every run.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

struct LoadFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
