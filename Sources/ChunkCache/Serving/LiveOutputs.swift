import Digests
import Synchronization

/// The outputs this run has a live file for, or is making one for, by output ID: so that each is
/// made once, whoever needs it first (a get, a put, the prefetcher), and a get for an output
/// being made waits for that work instead of doing it again.
///
/// A file recorded here was made (and checked) in this run and is never rewritten, so it can be
/// handed out again without looking at it.
public final class LiveOutputs: Sendable {
    private enum State {
        case making(waiters: [CheckedContinuation<Void, Never>])
        case ready(path: String, prefetched: Bool)
    }
    private let table = Mutex<[SHA256Digest: State]>([:])

    public init() {}

    /// The live file of `outputID`: the one recorded, else made now by `make` (which returns its
    /// path). If someone else is making it, waits for them; if they fail, makes it itself (and so
    /// meets any damage itself). `prefetched` says whether the file came from the prefetcher and
    /// this is the first get to be handed it.
    public func file(_ outputID: SHA256Digest, making make: () throws -> String) async throws -> (path: String, prefetched: Bool) {
        while true {
            enum Found { case ready(String, Bool), mine, busy }
            let found = table.withLock { table -> Found in
                switch table[outputID] {
                case .ready(let path, let prefetched):
                    if prefetched { table[outputID] = .ready(path: path, prefetched: false) }
                    return .ready(path, prefetched)
                case .making: return .busy
                case nil:
                    table[outputID] = .making(waiters: [])
                    return .mine
                }
            }
            switch found {
            case .ready(let path, let prefetched): return (path, prefetched)
            case .mine: return (try finish(outputID, prefetched: false, make), false)
            case .busy:
                await withCheckedContinuation { continuation in
                    let waiting = table.withLock { table -> Bool in
                        guard case .making(let waiters) = table[outputID] else { return false }
                        table[outputID] = .making(waiters: waiters + [continuation])
                        return true
                    }
                    if !waiting { continuation.resume() }
                }
            }
        }
    }

    /// Makes the live file of `outputID` with `make` unless it is recorded or being made; for
    /// work ahead of the go command, which never waits. Returns whether it made it.
    public func makeUnlessPresent(_ outputID: SHA256Digest, _ make: () throws -> String) -> Bool {
        let mine = table.withLock { table -> Bool in
            guard table[outputID] == nil else { return false }
            table[outputID] = .making(waiters: [])
            return true
        }
        guard mine else { return false }
        return (try? finish(outputID, prefetched: true, make)) != nil
    }

    /// Records `path` as the live file of `outputID` (a put's), unless one is already recorded.
    public func add(_ outputID: SHA256Digest, path: String) {
        let waiters = table.withLock { table -> [CheckedContinuation<Void, Never>] in
            if case .ready = table[outputID] { return [] }
            let waiters: [CheckedContinuation<Void, Never>]
            if case .making(let list) = table[outputID] { waiters = list } else { waiters = [] }
            table[outputID] = .ready(path: path, prefetched: false)
            return waiters
        }
        waiters.forEach { $0.resume() }
    }

    /// The path recorded for `outputID`, if its file is made.
    public func path(of outputID: SHA256Digest) -> String? {
        table.withLock { table in
            if case .ready(let path, _) = table[outputID] { return path }
            return nil
        }
    }

    /// Runs `make` for an output this caller claimed, records the result (or forgets the claim
    /// if it throws) and wakes those waiting.
    private func finish(_ outputID: SHA256Digest, prefetched: Bool, _ make: () throws -> String) throws -> String {
        let result = Result { try make() }
        let waiters = table.withLock { table -> [CheckedContinuation<Void, Never>] in
            guard case .making(let waiters) = table[outputID] else { return [] }
            switch result {
            case .success(let path): table[outputID] = .ready(path: path, prefetched: prefetched)
            case .failure: table[outputID] = nil
            }
            return waiters
        }
        waiters.forEach { $0.resume() }
        return try result.get()
    }
}
