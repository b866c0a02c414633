import ChunkStore
import Digests
import FileIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The order in which one run asked for actions: what the next run of the same build will ask
/// for, in nearly the same order. Keys are kept by their first 8 bytes (a quarter of the space;
/// a prefix matching two actions is simply not prefetched).
public struct RequestOrder: Sendable, Equatable {
    /// What the run was (`RunContext.current()`): the same build asks again in the same context.
    public var context: UInt64
    /// When the run started.
    public var time: Timestamp
    /// Key prefixes, each once, in the order of the run's first get for it.
    public var keys: [UInt64]

    public init(context: UInt64, time: Timestamp, keys: [UInt64]) {
        self.context = context
        self.time = time
        self.keys = keys
    }

    /// The 8-byte prefix by which an order remembers `key`.
    public static func prefix(of key: SHA256Digest) -> UInt64 { key.leadingWord }

    /// Collects a run's order as its gets arrive (from any thread); bounded by `limit` keys.
    /// Whole keys are kept too, for the remote tier (which is asked by key).
    public final class Recorder: Sendable {
        private let state = Mutex<(digests: [SHA256Digest], seen: Set<UInt64>)>(([], []))
        public let limit: Int

        public init(limit: Int = RecordedOrders.maxKeys) { self.limit = limit }

        public func add(_ key: SHA256Digest) {
            let prefix = RequestOrder.prefix(of: key)
            state.withLock { state in
                guard state.digests.count < limit, state.seen.insert(prefix).inserted else { return }
                state.digests.append(key)
            }
        }

        /// The keys' prefixes, in order.
        public var keys: [UInt64] { digests.map(RequestOrder.prefix(of:)) }
        public var digests: [SHA256Digest] { state.withLock { $0.digests } }
    }
}

/// The orders recorded in a store (`STORE/orders`): the last `limit` runs', one per context (the
/// newest), newest last. About 12 KiB for a `go build std`, so under 1 % of the store it describes.
///
/// Written whole, atomically (a temporary file, then a rename): two runs ending at once may lose
/// one's order, never mix them. A file that does not parse reads as holding the orders before the
/// damage, so a damaged file costs prefetch at most, never a build.
public struct RecordedOrders: Sendable {
    public let path: String
    public let limit: Int
    /// Keys recorded per run at most (512 KiB).
    public static let maxKeys = 65_536
    static let magic: [UInt8] = Array("chunkcache-orders-1\n".utf8)

    public init(store: ChunkStore, limit: Int = 8) {
        path = store.directory + "/orders"
        self.limit = limit
    }

    /// The recorded orders, oldest first.
    public func load() -> [RequestOrder] {
        guard let bytes = try? FileSystem.readFile(path) else { return [] }
        return Self.decode(bytes)
    }

    /// Records `order` in place of any older order of its context, dropping the oldest past `limit`.
    public func record(_ order: RequestOrder) throws {
        guard !order.keys.isEmpty else { return }
        var orders = load().filter { $0.context != order.context }
        orders.append(order)
        orders.sort { $0.time < $1.time }
        try FileSystem.writeFileAtomically(path, Self.encode(orders.suffix(limit)), permissions: 0o600)
    }

    static func encode(_ orders: some Collection<RequestOrder>) -> [UInt8] {
        var out = magic
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        for order in orders {
            append(order.context)
            append(order.time.nanosecondsSinceEpoch)
            append(UInt32(order.keys.count))
            for key in order.keys { append(key) }
        }
        return out
    }

    static func decode(_ bytes: [UInt8]) -> [RequestOrder] {
        guard bytes.starts(with: magic) else { return [] }
        var orders: [RequestOrder] = []
        bytes.withUnsafeBytes { raw in
            var offset = magic.count
            func read<T: FixedWidthInteger>(_: T.Type) -> T? {
                guard offset + MemoryLayout<T>.size <= raw.count else { return nil }
                defer { offset += MemoryLayout<T>.size }
                return T(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: T.self))
            }
            while offset < raw.count {
                guard let context = read(UInt64.self), let time = read(Int64.self), let count = read(UInt32.self),
                    Int(count) <= maxKeys, offset + Int(count) * 8 <= raw.count
                else { return }
                let keys = (0..<Int(count)).map { _ in read(UInt64.self)! }
                orders.append(RequestOrder(context: context, time: Timestamp(nanosecondsSinceEpoch: time), keys: keys))
            }
        }
        return orders
    }
}

/// What identifies a build for prefetch, known before its first request: the go command's
/// arguments and working directory, and the settings that change what it builds. The process
/// starts as the go command's child, in its directory and with its environment.
public enum RunContext {
    /// Settings read from the environment (the go command passes its own to its cache program).
    static let variables = ["GOOS", "GOARCH", "GOFLAGS", "CGO_ENABLED", "GOEXPERIMENT", "GOROOT", "GOAMD64", "GOARM64", "GOTOOLCHAIN"]

    /// A hash of this run's context; 0 if the parent's arguments cannot be read.
    public static func current() -> UInt64 {
        guard let arguments = try? FileSystem.readFile("/proc/\(getppid())/cmdline") else { return 0 }
        var text = arguments
        var directory = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        if getcwd(&directory, directory.count) != nil { text += [0] + directory.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) } }
        for name in variables {
            text += [0] + Array(name.utf8) + [UInt8(ascii: "=")]
            if let value = getenv(name) { text += Array(String(cString: value).utf8) }
        }
        return RequestOrder.prefix(of: SHA256.hash(text))
    }
}
