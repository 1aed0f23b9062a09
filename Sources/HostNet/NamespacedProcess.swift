import Glibc

/// A child process started inside a network namespace (`ip netns exec` without the mount
/// namespace part): `posix_spawn` runs on the calling thread while that thread is inside the
/// namespace, and the child inherits it.
public final class NamespacedProcess: @unchecked Sendable {
    /// The child's process id.
    public let pid: pid_t
    /// The command line, for messages.
    public let arguments: [String]
    private var outputDescriptor: Int32
    /// Standard error's pipe when it is kept apart from standard output; -1 otherwise.
    private var errorDescriptor: Int32 = -1
    private var exitStatus: Int32?
    private var detached = false

    /// What a finished process left behind.
    public struct Result: Sendable {
        /// The exit code, or 128 + signal number when it was killed.
        public var status: Int32
        /// Standard output and standard error, interleaved.
        public var output: String
        /// True when ``NamespacedProcess/run(_:in:timeoutSeconds:)`` had to kill it.
        public var timedOut: Bool
    }

    /// Starts `arguments[0]` (searched in `PATH`) in `namespace` (the caller's when nil) with
    /// standard output and error going to a pipe this object reads (two pipes when
    /// `separateStandardError`), or to `/dev/null` when `captureOutput` is false.
    public init(
        _ arguments: [String], in namespace: NetworkNamespace? = nil, captureOutput: Bool = true, separateStandardError: Bool = false
    ) throws(HostNetError) {
        precondition(!arguments.isEmpty, "empty command line")
        self.arguments = arguments
        var pipeEnds: [Int32] = [-1, -1]
        var errorEnds: [Int32] = [-1, -1]
        if captureOutput {
            try checkErrno(pipe(&pipeEnds), "create pipe", arguments[0])
            for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            if separateStandardError {
                if pipe(&errorEnds) != 0 {
                    let failure = errno
                    pipeEnds.forEach { Glibc.close($0) }
                    throw HostNetError("create pipe", arguments[0], errno: failure)
                }
                for end in errorEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            }
        } else {
            pipeEnds[1] = try checkErrno(open("/dev/null", O_WRONLY | O_CLOEXEC), "open /dev/null", arguments[0])
        }
        defer {
            Glibc.close(pipeEnds[1])
            if errorEnds[1] >= 0 { Glibc.close(errorEnds[1]) }
        }
        outputDescriptor = pipeEnds[0]
        errorDescriptor = errorEnds[0]
        let closeReadEnds = { [pipeEnds, errorEnds] in
            for end in [pipeEnds[0], errorEnds[0]] where end >= 0 { Glibc.close(end) }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errorEnds[1] >= 0 ? errorEnds[1] : pipeEnds[1], 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)

        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let spawn = { posix_spawnp(&child, argv[0]!, &actions, nil, argv, environ) }
        let result: Int32
        if let namespace {
            do { result = try namespace.run(spawn) } catch let error as HostNetError {
                closeReadEnds()
                throw error
            } catch { result = EINVAL }
        } else {
            result = spawn()
        }
        if result != 0 {
            closeReadEnds()
            throw HostNetError("spawn", arguments.joined(separator: " "), errno: result)
        }
        pid = child
    }

    deinit {
        if exitStatus == nil && !detached {
            kill(pid, SIGKILL)
            _ = reap(blocking: true)
        }
        if outputDescriptor >= 0 { Glibc.close(outputDescriptor) }
        if errorDescriptor >= 0 { Glibc.close(errorDescriptor) }
    }

    /// Lets the child outlive this object (a daemon): deinit will neither kill nor reap it.
    /// Whoever keeps its pid must reap or stop it.
    public func detach() { detached = true }

    /// Sends a signal to the child.
    public func signal(_ number: Int32) { if exitStatus == nil { kill(pid, number) } }

    /// True while the child has not exited.
    public var isRunning: Bool { exitStatus == nil && reap(blocking: false) == nil }

    /// Waits for the child, reading its output, for at most `timeoutSeconds`; kills it then.
    public func wait(timeoutSeconds: Double) -> Result {
        var output: [UInt8] = []
        let (status, timedOut) = stream(timeoutSeconds: timeoutSeconds) { bytes, _ in
            output.append(contentsOf: bytes)
            return true
        }
        return Result(status: status, output: String(decoding: output, as: UTF8.self), timedOut: timedOut)
    }

    /// Waits for the child for at most `timeoutSeconds`, handing each piece of its output to
    /// `deliver` as it arrives (`isStandardError` true for standard error's own pipe). The
    /// child is killed when the time is up or when `deliver` returns false (nobody reads on).
    /// Returns its exit status (128 + N for signal N) and whether it had to be killed.
    public func stream(
        timeoutSeconds: Double, _ deliver: (_ bytes: ArraySlice<UInt8>, _ isStandardError: Bool) -> Bool
    ) -> (status: Int32, timedOut: Bool) {
        var timedOut = false
        var abandoned = false
        let deadline = monotonicSeconds() + timeoutSeconds
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        // Bounded by the deadline: each pass either reads, sees EOF, or waits ≤ 100 ms.
        while outputDescriptor >= 0 || errorDescriptor >= 0 {
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 {
                timedOut = true
                break
            }
            var entries = [
                pollfd(fd: outputDescriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: errorDescriptor, events: Int16(POLLIN), revents: 0),
            ]
            if poll(&entries, 2, Int32(min(remaining, 0.1) * 1000) + 1) <= 0 { continue }
            for (index, entry) in entries.enumerated() where entry.fd >= 0 && entry.revents != 0 {
                let count = chunk.withUnsafeMutableBytes { Glibc.read(entry.fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    if !deliver(chunk[0..<count], index == 1) { abandoned = true }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    Glibc.close(entry.fd)
                    if index == 0 { outputDescriptor = -1 } else { errorDescriptor = -1 }
                }
            }
            if abandoned { break }
        }
        if outputDescriptor < 0 && errorDescriptor < 0 {
            // Output closed: the child is exiting (or closed its output); give it the rest of the time.
            while reap(blocking: false) == nil {
                if monotonicSeconds() >= deadline {
                    timedOut = true
                    break
                }
                usleep(2000)
            }
        }
        if timedOut || abandoned || exitStatus == nil {
            kill(pid, SIGKILL)
            _ = reap(blocking: true)
        }
        return (exitStatus ?? -1, timedOut)
    }

    /// Reads the child's output up to the first newline (at most `timeoutSeconds`), for a child
    /// that announces something (a port) and keeps running. The rest stays unread.
    public func readLine(timeoutSeconds: Double) throws(HostNetError) -> String? {
        var line: [UInt8] = []
        let deadline = monotonicSeconds() + timeoutSeconds
        var byte: UInt8 = 0
        // Bounded by the deadline and by 4096 bytes.
        while outputDescriptor >= 0, line.count < 4096 {
            let remaining = deadline - monotonicSeconds()
            guard remaining > 0 else { return nil }
            var entry = pollfd(fd: outputDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, Int32(remaining * 1000) + 1) > 0 else { continue }
            guard Glibc.read(outputDescriptor, &byte, 1) == 1 else { return nil }
            if byte == 0x0A { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
        return nil
    }

    /// Runs a command to completion in `namespace` and returns its status and output.
    public static func run(_ arguments: [String], in namespace: NetworkNamespace? = nil, timeoutSeconds: Double = 30)
        throws(HostNetError) -> Result
    {
        try NamespacedProcess(arguments, in: namespace).wait(timeoutSeconds: timeoutSeconds)
    }

    @discardableResult
    private func reap(blocking: Bool) -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let result = waitpid(pid, &status, blocking ? 0 : WNOHANG)
        guard result == pid else { return nil }
        let signalNumber = status & 0x7F
        exitStatus = signalNumber == 0 ? (status >> 8) & 0xFF : 128 + signalNumber
        return exitStatus
    }
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
