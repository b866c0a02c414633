/// Standard base64 (RFC 4648 §4, with padding), the encoding of Go's `[]byte` JSON fields and of
/// put bodies. Written here because Foundation's is slow on large data and cannot stream.
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let invalid: UInt8 = 0xFF
    static let padding: UInt8 = 0xFE
    static let values: [UInt8] = {
        var table = [UInt8](repeating: invalid, count: 256)
        for (value, symbol) in alphabet.enumerated() { table[Int(symbol)] = UInt8(value) }
        table[Int(UInt8(ascii: "="))] = padding
        return table
    }()

    /// Characters needed for `count` bytes.
    public static func encodedCount(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Appends the encoding of `bytes` (padded) to `out`.
    public static func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let start = out.count
        let total = encodedCount(bytes.count)
        out.append(contentsOf: repeatElement(0, count: total))
        out.withUnsafeMutableBufferPointer { dst in
            alphabet.withUnsafeBufferPointer { table in
                var o = start
                var i = 0
                let n = bytes.count
                while i + 3 <= n {
                    let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
                    dst[o] = table[Int(v >> 18)]
                    dst[o + 1] = table[Int(v >> 12 & 63)]
                    dst[o + 2] = table[Int(v >> 6 & 63)]
                    dst[o + 3] = table[Int(v & 63)]
                    i += 3
                    o += 4
                }
                if i < n {
                    let second = i + 1 < n ? UInt32(bytes[i + 1]) : 0
                    let v = UInt32(bytes[i]) << 16 | second << 8
                    dst[o] = table[Int(v >> 18)]
                    dst[o + 1] = table[Int(v >> 12 & 63)]
                    dst[o + 2] = i + 1 < n ? table[Int(v >> 6 & 63)] : UInt8(ascii: "=")
                    dst[o + 3] = UInt8(ascii: "=")
                }
            }
        }
    }

    /// The encoding of `bytes` as a string.
    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        bytes.withUnsafeBytes { encode($0, into: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes a whole padded base64 text; nil if it is not one.
    public static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        var decoder = Base64Decoder()
        var out = [UInt8]()
        out.reserveCapacity(text.count / 4 * 3)
        let chars = Array(text)
        let ok = chars.withUnsafeBufferPointer { decoder.decode($0, into: &out) }
        guard ok, decoder.finish() else { return nil }
        return out
    }
}

/// Decodes base64 that arrives in pieces of any size (a put body read from a pipe).
///
/// Feed each piece to `decode(_:into:)`, then call `finish()` once at the end of the text.
public struct Base64Decoder: Sendable {
    private var carry: UInt32 = 0  // sextets of an unfinished quad
    private var carried = 0  // how many sextets `carry` holds
    private var padded = 0  // '=' seen; only padding may follow
    /// Decoded bytes so far.
    public private(set) var decodedCount: Int64 = 0

    public init() {}

    /// Appends the bytes `chars` decode to; false at the first character that is not base64
    /// (or data after padding).
    public mutating func decode(_ chars: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) -> Bool {
        let n = chars.count
        guard n > 0 else { return true }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: (carried + n) / 4 * 3 + 3))
        var o = start
        var i = 0
        let ok: Bool = Base64.values.withUnsafeBufferPointer { table in
            out.withUnsafeMutableBufferPointer { dst in
                // Adds one sextet; a fourth completes a quad, written as three bytes.
                func push(_ v: UInt8) {
                    carry = carry << 6 | UInt32(v)
                    carried += 1
                    guard carried == 4 else { return }
                    dst[o] = UInt8(truncatingIfNeeded: carry >> 16)
                    dst[o + 1] = UInt8(truncatingIfNeeded: carry >> 8)
                    dst[o + 2] = UInt8(truncatingIfNeeded: carry)
                    o += 3
                    carry = 0
                    carried = 0
                }
                if padded == 0 {
                    // Finish a quad left over from the previous piece, one character at a time.
                    while carried != 0, i < n {
                        let v = table[Int(chars[i])]
                        if v >= 64 { break }
                        push(v)
                        i += 1
                    }
                    // The fast path: whole quads.
                    if carried == 0 {
                        while i + 4 <= n {
                            let a = table[Int(chars[i])], b = table[Int(chars[i + 1])]
                            let c = table[Int(chars[i + 2])], d = table[Int(chars[i + 3])]
                            if (a | b | c | d) >= 64 { break }
                            let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                            dst[o] = UInt8(truncatingIfNeeded: v >> 16)
                            dst[o + 1] = UInt8(truncatingIfNeeded: v >> 8)
                            dst[o + 2] = UInt8(truncatingIfNeeded: v)
                            o += 3
                            i += 4
                        }
                    }
                }
                // The tail, and padding.
                while i < n {
                    let v = table[Int(chars[i])]
                    if v == Base64.padding {
                        // Padding may only complete a quad holding 2 or 3 sextets.
                        guard carried + padded >= 2, carried + padded < 4 else { return false }
                        padded += 1
                        if carried + padded == 4 {
                            if carried == 2 {
                                dst[o] = UInt8(truncatingIfNeeded: carry >> 4)
                                o += 1
                            } else {
                                dst[o] = UInt8(truncatingIfNeeded: carry >> 10)
                                dst[o + 1] = UInt8(truncatingIfNeeded: carry >> 2)
                                o += 2
                            }
                            carried = 0
                            carry = 0
                            padded = 4  // complete: nothing more may come
                        }
                    } else if v < 64, padded == 0 {
                        push(v)
                    } else {
                        return false
                    }
                    i += 1
                }
                return true
            }
        }
        out.removeLast(out.count - o)
        decodedCount += Int64(o - start)
        return ok
    }

    /// True if the text ended on a quad boundary (with or without correct padding).
    public func finish() -> Bool {
        carried == 0 && (padded == 0 || padded == 4)
    }
}

/// Encodes base64 for data that arrives in pieces, as a put body is streamed to a cache program.
public struct Base64Encoder: Sendable {
    private var pending: [UInt8] = []  // at most 2 bytes that did not fill a triple

    public init() {}

    /// Appends the characters for `bytes` that are complete so far.
    public mutating func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        var input = bytes
        if !pending.isEmpty {
            while pending.count < 3, !input.isEmpty {
                pending.append(input[0])
                input = UnsafeRawBufferPointer(rebasing: input[1...])
            }
            guard pending.count == 3 else { return }
            pending.withUnsafeBytes { Base64.encode($0, into: &out) }
            pending.removeAll(keepingCapacity: true)
        }
        let whole = input.count / 3 * 3
        Base64.encode(UnsafeRawBufferPointer(rebasing: input[..<whole]), into: &out)
        pending.append(contentsOf: input[whole...])
    }

    /// Appends the final characters, with padding.
    public mutating func finish(into out: inout [UInt8]) {
        pending.withUnsafeBytes { Base64.encode($0, into: &out) }
        pending.removeAll()
    }
}
