import Dispatch
import FileIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Serialises pipe creation and spawning in this process (see `launch`).
private let spawnLock = Mutex(())

/// A program started with pipes to its standard input and output (standard error is shared
/// with this process, as the go command does).
struct ChildProcess: Sendable {
    let pid: pid_t
    /// Write end of the child's standard input.
    let input: FileDescriptor
    /// Read end of the child's standard output.
    let output: FileDescriptor

    /// Starts `arguments[0]` (searched in PATH) with `arguments`, and `environment` if given.
    static func launch(_ arguments: [String], environment: [String: String]?) throws -> ChildProcess {
        precondition(!arguments.isEmpty, "no program to launch")
        // Writing to a program that died must be an error (EPIPE) for the client to report, not
        // a signal that kills this whole process. (The go command's runtime does the same.)
        signal(SIGPIPE, SIG_IGN)
        return try spawnLock.withLock { _ in try launchLocked(arguments, environment: environment) }
    }

    private static func launchLocked(_ arguments: [String], environment: [String: String]?) throws -> ChildProcess {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        // All four ends are close-on-exec, set while holding `spawnLock`, so a program launched
        // concurrently from another task does not inherit them (and keep a pipe open after this
        // child exits). The child's own ends lose the flag when dup2 moves them to 0 and 1.
        guard pipe(&toChild) == 0 else { throw SystemError("pipe") }
        guard pipe(&fromChild) == 0 else {
            close(toChild[0]); close(toChild[1])
            throw SystemError("pipe")
        }
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_addclose(&actions, toChild[0])
        posix_spawn_file_actions_addclose(&actions, fromChild[1])

        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let environmentList: [String]
        if let environment {
            environmentList = environment.map { "\($0.key)=\($0.value)" }
        } else {
            var list: [String] = []
            var pointer = environ
            while let entry = pointer.pointee {
                list.append(String(decoding: UnsafeRawBufferPointer(start: entry, count: strlen(entry)), as: UTF8.self))
                pointer += 1
            }
            environmentList = list
        }
        let envp = environmentList.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }

        var pid: pid_t = 0
        let result = posix_spawnp(&pid, arguments[0], &actions, nil, argv, envp)
        close(toChild[0])
        close(fromChild[1])
        guard result == 0 else {
            close(toChild[1]); close(fromChild[0])
            throw SystemError("posix_spawn", path: arguments[0], code: result)
        }
        return ChildProcess(pid: pid, input: FileDescriptor(rawValue: toChild[1]), output: FileDescriptor(rawValue: fromChild[0]))
    }

    /// Waits for the child to exit; returns its exit status (128 + signal if killed).
    func wait() async -> Int32 {
        let pid = self.pid
        return await withCheckedContinuation { continuation in
            // A queue of its own: it runs on a thread beyond the global pool, which Swift's
            // cooperative threads are on Linux, so a blocked waitpid never holds one of them.
            DispatchQueue(label: "ChildProcess.wait.\(pid)").async {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1, errno == EINTR {}
                let signal = status & 0x7F
                continuation.resume(returning: signal == 0 ? (status >> 8) & 0xFF : 128 + signal)
            }
        }
    }

    /// Sends `signal` (SIGKILL by default).
    func kill(_ signal: Int32 = SIGKILL) { _ = Glibc.kill(pid, signal) }
}
