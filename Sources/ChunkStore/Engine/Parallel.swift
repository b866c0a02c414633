import Dispatch
import FileIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Sharing one job's items among a few threads: the one way the store spreads work over cores
/// (decoding an output's chunks, recompressing a batch).
public enum Parallel {
    /// Threads that work on one job at once.
    public static let threads = max(1, min(4, sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// Calls `body(index, &scratch)` for every index in `0..<count`, the indices going to whichever
    /// thread is free, on up to `threads` threads (the caller's among them); each thread has its
    /// own `scratch` from `makeScratch` (buffers reused across its items). `first`, if given, runs
    /// on one thread before it joins the others. Returns when all are done; throws the first
    /// error, after which the remaining indices are skipped.
    static func forEach<Scratch>(
        _ count: Int, threads: Int = Parallel.threads, scratch makeScratch: @Sendable () -> Scratch,
        first: (@Sendable () throws -> Void)? = nil, _ body: @Sendable (Int, inout Scratch) throws -> Void
    ) throws {
        let failure = Mutex<(any Error)?>(nil)
        let next = AtomicCounter()
        let failed = Atomic<Bool>(false)
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, count))) { thread in
            func record(_ error: any Error) {
                failure.withLock { if $0 == nil { $0 = error } }
                failed.store(true, ordering: .relaxed)
            }
            if thread == 0, let first {
                do { try first() } catch { record(error) }
            }
            var scratch = makeScratch()
            while !failed.load(ordering: .relaxed) {
                let index = Int(next.add()) - 1
                guard index < count else { return }
                do { try body(index, &scratch) } catch { return record(error) }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }
}

/// A buffer that several threads use at once, each on ranges no other thread touches (one chunk
/// each; or a whole earlier window, only read), and that no one else uses until all are done
/// (`Parallel.forEach` returns only then): so sharing the pointer is safe, though the compiler
/// cannot see it.
struct DisjointWrites: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
}
