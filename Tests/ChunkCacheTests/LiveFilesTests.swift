import ChunkCache
import TestSupport
import Digests
import FileIO
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Live files: in memory while the budget lasts, then on disk")
struct LiveFilesTests {
    /// Two roots standing for the memory filesystem and the store's live directory.
    struct Roots: ~Copyable {
        let base = "/tmp/livefiles-test-" + FileSystem.uniqueSuffix()
        var memory: String { base + "/memory" }
        var disk: String { base + "/disk" }
        deinit { try? FileSystem.removeTree(base) }
    }

    func write(_ live: LiveFiles, _ body: [UInt8]) throws -> String {
        try live.create(SHA256.hash(body), size: Int64(body.count)) { try FileSystem.writeFileAtomically($0, body, permissions: 0o644) }
    }

    @Test("files go to memory until the budget (in whole pages) is used, then to disk")
    func budgetThenDisk() throws {
        let roots = Roots()
        let live = try LiveFiles(diskRoot: roots.disk, memoryRoot: roots.memory, memoryBudget: 3 * 4096)
        let small = [UInt8](repeating: 1, count: 100)  // one page in memory
        let large = [UInt8](repeating: 2, count: 5000)  // two pages
        let third = [UInt8](repeating: 3, count: 10)
        let first = try write(live, small)
        let second = try write(live, large)
        let last = try write(live, third)
        #expect(first.hasPrefix(roots.memory + "/"))
        #expect(second.hasPrefix(roots.memory + "/"))
        #expect(last.hasPrefix(roots.disk + "/"), "the budget of three pages is spent")
        #expect(try FileSystem.readFile(first) == small)
        #expect(try FileSystem.readFile(second) == large)
        #expect(try FileSystem.readFile(last) == third)
    }

    @Test("a body too large to hold in memory is spooled in memory while the budget allows, and adopted there")
    func largeBodiesInMemory() throws {
        let roots = Roots()
        let live = try LiveFiles(diskRoot: roots.disk, memoryRoot: roots.memory, memoryBudget: 3 << 20)
        let large = pseudoRandomBytes(2 << 20, seed: 1)
        let spool = try #require(live.spoolDirectory(forBodyOf: Int64(large.count)), "2 MiB of a 3 MiB budget")
        #expect(spool.hasPrefix(roots.memory + "/"))
        try FileSystem.writeFileAtomically(spool + "/.body-1.tmp", large)
        let path = try live.adopt(spool + "/.body-1.tmp", as: SHA256.hash(large))
        #expect(path == live.memory?.path(for: SHA256.hash(large)))
        #expect(path.hasPrefix(roots.memory + "/"))
        #expect(try FileSystem.readFile(path) == large)

        #expect(live.spoolDirectory(forBodyOf: 2 << 20) == nil, "past the budget: the store's filesystem")
        try FileSystem.createDirectories(roots.base + "/tmp")
        try FileSystem.writeFileAtomically(roots.base + "/tmp/.body-2.tmp", [1, 2, 3])
        #expect(try live.adopt(roots.base + "/tmp/.body-2.tmp", as: SHA256.hash([1, 2, 3])).hasPrefix(roots.disk + "/"))
    }

    @Test("runs kept after go list share one copy of unchanged outputs, and all kept runs stay within their bound")
    func keptRunsBounded() throws {
        let roots = Roots()
        let page = 4096
        let outputs = (0..<5).map { [UInt8](repeating: UInt8($0), count: page) }
        func run(_ bodies: [[UInt8]], store: String? = nil) throws -> (paths: [String], written: Int) {
            let live = try LiveFiles(diskRoot: store ?? roots.disk, memoryRoot: roots.memory, memoryBudget: 1 << 20, keptLimit: 8 * Int64(page))
            live.sweep(retention: .seconds(3600))
            var written = 0
            let paths = try bodies.map { body in
                try live.create(SHA256.hash(body), size: Int64(body.count)) { path in
                    written += 1
                    try FileSystem.writeFileAtomically(path, body, permissions: 0o644)
                }
            }
            live.markKept()  // input ended without close, as go list -export ends it
            return (paths, written)
        }  // the process is gone
        func keptBytes() throws -> Int64 {
            var inodes = Set<UInt64>()
            var bytes: Int64 = 0
            for directory in try FileSystem.contentsOfDirectory(roots.memory + "/live") {
                for name in try FileSystem.contentsOfDirectory(roots.memory + "/live/" + directory) where !name.hasPrefix(".") {
                    let info = try FileSystem.status(of: roots.memory + "/live/" + directory + "/" + name)
                    if inodes.insert(info.inode).inserted { bytes += info.allocatedSize }
                }
            }
            return bytes
        }

        let first = try run(outputs)
        #expect(first.written == 5)
        let second = try run(outputs)
        #expect(second.written == 0, "the same outputs again: linked, not written")
        for (a, b) in zip(first.paths, second.paths) {
            #expect(try FileSystem.status(of: a).inode == (try FileSystem.status(of: b).inode))
        }
        #expect(try keptBytes() == 5 * Int64(page), "two runs, one copy")

        // Changed in place after the runs (same size, one byte different): in both runs' directories.
        // File times tick with the kernel's coarse clock (a few ms): change it a tick later.
        usleep(20_000)
        let changed = try FileDescriptor.open(first.paths[0], [.writeOnly])
        try [UInt8(9)].withUnsafeBytes { try changed.writeAll($0, at: 0) }
        changed.close()
        #expect(try run([outputs[0]]).written == 1, "a changed copy is never linked")

        #expect(try run(outputs, store: roots.base + "/other-store").written == 5, "another store's runs are not linked")
        let others = try run((10..<17).map { [UInt8](repeating: UInt8($0), count: page) })
        #expect(others.written == 7)
        #expect(try keptBytes() <= 8 * Int64(page), "the oldest kept runs went, within the bound")
        #expect(others.paths.allSatisfy { FileSystem.exists($0) }, "the newest run's files stay")
    }

    @Test("without a memory root, or with a zero budget, everything goes to disk")
    func diskOnly() throws {
        let roots = Roots()
        for live in [
            try LiveFiles(diskRoot: roots.disk, memoryRoot: nil, memoryBudget: 1 << 20),
            try LiveFiles(diskRoot: roots.disk, memoryRoot: roots.memory, memoryBudget: 0),
        ] {
            #expect(live.memory == nil)
            #expect(try write(live, [1, 2, 3]).hasPrefix(roots.disk + "/"))
        }
    }

    @Test("removeAll clears both of this process's directories")
    func removeAll() throws {
        let roots = Roots()
        let live = try LiveFiles(diskRoot: roots.disk, memoryRoot: roots.memory, memoryBudget: 4096)
        let a = try write(live, [1])
        let b = try write(live, [2])
        live.removeAll()
        #expect(!FileSystem.exists(a))
        #expect(!FileSystem.exists(b))
    }

    @Test("the private memory root is refused when others could write to it", .enabled(if: FileSystem.isInMemory("/dev/shm")))
    func privateRoot() throws {
        let shared = "/dev/shm/livefiles-test-" + FileSystem.uniqueSuffix()
        try FileSystem.createDirectory(shared, permissions: 0o755)
        defer { try? FileSystem.removeTree(shared) }
        let root = try #require(LiveFiles.privateMemoryRoot(in: shared))
        #expect(root == shared + "/chunkcache-\(getuid())")
        #expect(try FileSystem.status(of: root).mode & 0o777 == 0o700)
        try FileSystem.setPermissions(root, 0o777)
        #expect(LiveFiles.privateMemoryRoot(in: shared) == nil)
        #expect(LiveFiles.privateMemoryRoot(in: "/tmp/livefiles-no-such-dir") == nil)
        #expect(LiveFiles.memoryBudget(limit: 1 << 40, root: root) <= (try FileSystem.availableSpace(at: root)) / 4)
        #expect(LiveFiles.memoryBudget(limit: 1 << 20, root: nil) == 0)
    }

    /// Sets a directory's modification time `seconds` into the past.
    func age(_ path: String, seconds: Int) {
        var times = [timespec(tv_sec: time(nil) - seconds, tv_nsec: 0), timespec(tv_sec: time(nil) - seconds, tv_nsec: 0)]
        _ = utimensat(AT_FDCWD, path, &times, 0)
    }

    @Test("sweeping: a killed process's files go after a minute, kept ones after the retention, a live process's never")
    func sweep() throws {
        let roots = Roots()
        let hour = Duration.seconds(3600)
        var killed: String, kept: String
        do {
            let a = try LiveArea(root: roots.disk)
            let b = try LiveArea(root: roots.disk)
            try FileSystem.writeFileAtomically(a.path(for: SHA256.hash([1])), [1])
            b.markKept(owner: roots.disk)
            killed = a.directory
            kept = b.directory
        }  // both processes are gone: their locks are released
        let alive = try LiveArea(root: roots.disk)

        LiveArea.sweep(root: roots.disk, retention: hour)
        #expect(FileSystem.exists(killed), "too fresh: its process may not have locked it yet")
        for directory in [killed, kept, alive.directory] { age(directory, seconds: 120) }
        LiveArea.sweep(root: roots.disk, retention: hour)
        #expect(!FileSystem.exists(killed))
        #expect(FileSystem.exists(kept), "kept for go list's readers until the retention passes")
        for directory in [kept, alive.directory] { age(directory, seconds: 7200) }
        LiveArea.sweep(root: roots.disk, retention: hour)
        #expect(!FileSystem.exists(kept))
        #expect(FileSystem.exists(alive.directory))
    }
}
