/// Uploads to the remote tier, run after the go command has its reply, at most `limit` at once,
/// and drained when the run ends. These are unstructured tasks on purpose: an upload outlives the
/// request that caused it; `drain` is where the run waits for (or abandons) them.
actor UploadQueue {
    private let limit: Int
    private var active = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private var tasks: [Task<Void, Never>] = []

    init(limit: Int) { self.limit = limit }

    func add(_ work: @escaping @Sendable () async -> Void) {
        tasks.append(Task {
            await self.acquire()
            await work()
            self.release()
        })
    }

    private func acquire() async {
        if active < limit {
            active += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty { active -= 1 } else { waiting.removeFirst().resume() }
    }

    /// Waits for every upload, or cancels what is left after `limit`.
    func drain(limit: Duration) async {
        let pending = tasks
        tasks.removeAll()
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for task in pending { await task.value }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                return false
            }
            _ = await group.next()
            for task in pending { task.cancel() }  // past the limit: abandon what is left
            group.cancelAll()
        }
    }
}
