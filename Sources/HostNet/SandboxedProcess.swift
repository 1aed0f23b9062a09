import CShoal
import Foundation
import Glibc

/// How a task's process is set up: its command, environment and hostname, the network
/// namespace it lives in, files bind-mounted over the host's (its own /etc/resolv.conf and
/// /etc/hosts), its control groups, and where its output goes.
public struct SandboxSpec: Sendable {
    /// argv; the first is searched in PATH.
    public var command: [String]
    /// KEY=VALUE entries; PATH and HOSTNAME are added when missing.
    public var environment: [String] = []
    /// The UTS hostname.
    public var hostname: String?
    /// The network namespace the process joins (nil: the caller's).
    public var networkNamespace: NetworkNamespace?
    /// (source, target) files mounted over targets inside the process's mount namespace.
    public var bindMounts: [(source: String, target: String)] = []
    /// The groups it joins before it runs.
    public var controlGroup: ControlGroup?
    /// Working directory (nil: the daemon's).
    public var workingDirectory: String?
    /// Files its standard output and error are appended to (nil: /dev/null).
    public var outputFile: String?
    public var errorFile: String?
    /// A PID namespace of its own, with its own /proc: the process started is then a small
    /// init (PID 1 there) that runs the command as its child, forwards it every signal, reaps
    /// orphans and exits with its status, as `docker run --init` does.
    public var newPIDNamespace = false

    /// A spec running `command` with nothing else set.
    public init(command: [String]) { self.command = command }
}

/// How a process ended.
public enum ProcessExit: Sendable, Equatable, CustomStringConvertible {
    /// It exited with this status.
    case exited(Int32)
    /// A signal killed it.
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let code): "exit status \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}

/// A process started in a sandbox (new mount and UTS namespaces, a network namespace, cgroups);
/// see sandbox.c. The caller waits for it with ``waitForExit()``, which reaps it.
public final class SandboxedProcess: Sendable {
    /// Its pid (in the host's PID namespace) and start time.
    public let identity: ProcessIdentity

    /// Starts `spec`'s command; returns once it has exec'd, or throws with the step that failed.
    public init(_ spec: SandboxSpec) throws(HostNetError) {
        precondition(!spec.command.isEmpty, "empty command line")
        let name = spec.command[0]
        var opened: [Int32] = []
        defer { opened.forEach { close($0) } }
        func openFile(_ path: String?, flags: Int32) throws(HostNetError) -> Int32 {
            let descriptor = open(path ?? "/dev/null", flags | O_CLOEXEC, 0o640)
            guard descriptor >= 0 else { throw HostNetError("open", path ?? "/dev/null", errno: errno) }
            opened.append(descriptor)
            return descriptor
        }
        let input = try openFile(nil, flags: O_RDONLY)
        let output = try openFile(spec.outputFile, flags: O_WRONLY | O_CREAT | O_APPEND)
        let error = spec.errorFile == spec.outputFile ? output : try openFile(spec.errorFile, flags: O_WRONLY | O_CREAT | O_APPEND)
        let netns = try spec.networkNamespace.map { namespace throws(HostNetError) in try namespace.openDescriptor() } ?? -1
        if netns >= 0 { opened.append(netns) }

        var environment = spec.environment
        if !environment.contains(where: { $0.hasPrefix("PATH=") }) {
            environment.append("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        }
        if let hostname = spec.hostname, !environment.contains(where: { $0.hasPrefix("HOSTNAME=") }) {
            environment.append("HOSTNAME=\(hostname)")
        }
        let strings = CStrings(
            spec.command, environment, spec.bindMounts.map(\.source), spec.bindMounts.map(\.target),
            spec.controlGroup?.procsFiles ?? [], [spec.hostname ?? "", spec.workingDirectory ?? ""])
        defer { strings.free() }
        var errorNumber: Int32 = 0
        var step: Int32 = 0
        let pid = strings.withPointers { argv, envp, sources, targets, procs, extra in
            var cSpec = shoal_sandbox_spec()
            cSpec.netns_fd = netns
            cSpec.hostname = spec.hostname == nil ? nil : UnsafePointer(extra[0])
            cSpec.bind_sources = UnsafePointer(sources)
            cSpec.bind_targets = UnsafePointer(targets)
            cSpec.bind_count = Int32(spec.bindMounts.count)
            cSpec.cgroup_procs = UnsafePointer(procs)
            cSpec.cgroup_count = Int32(spec.controlGroup?.procsFiles.count ?? 0)
            cSpec.workdir = spec.workingDirectory == nil ? nil : UnsafePointer(extra[1])
            cSpec.stdin_fd = input
            cSpec.stdout_fd = output
            cSpec.stderr_fd = error
            cSpec.new_pid_namespace = spec.newPIDNamespace ? 1 : 0
            cSpec.argv = argv
            cSpec.envp = envp
            return shoal_sandbox_spawn(&cSpec, &errorNumber, &step)
        }
        guard pid > 0 else {
            let steps = [
                "clone", "reset signals", "join cgroup", "enter network namespace", "make mounts private", "bind-mount files",
                "set hostname", "set standard streams", "change directory", "start session", "execute", "mount /proc",
                "fork the command under init",
            ]
            let what = Int(step) < steps.count ? steps[Int(step)] : "step \(step)"
            throw HostNetError("sandbox: \(what)", name, errno: errorNumber)
        }
        identity = ProcessIdentity(pid: pid, startTime: ProcessIdentity.startTime(of: pid) ?? 0)
    }

    /// Sends `signal` to the process.
    public func signal(_ signal: Int32) { kill(identity.pid, signal) }

    /// Waits until the process ends and reaps it (on a thread of its own, so no task of the
    /// caller blocks). Call once.
    public func waitForExit() async -> ProcessExit {
        let pid = identity.pid
        return await withCheckedContinuation { continuation in
            let thread = Thread {
                var status: Int32 = 0
                var result: pid_t
                repeat { result = waitpid(pid, &status, 0) } while result < 0 && errno == EINTR
                guard result == pid else {
                    continuation.resume(returning: .exited(-1))
                    return
                }
                let signal = status & 0x7f
                continuation.resume(returning: signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal))
            }
            thread.name = "wait \(pid)"
            thread.start()
        }
    }
}

/// C strings for the launcher, freed together.
private struct CStrings {
    var lists: [[UnsafeMutablePointer<CChar>?]]

    init(_ lists: [String]...) {
        self.lists = lists.map { $0.map { strdup($0) } + [nil] }
    }

    func free() { lists.forEach { $0.forEach { Glibc.free($0) } } }

    func withPointers<T>(
        _ body: (
            UnsafePointer<UnsafeMutablePointer<CChar>?>, UnsafePointer<UnsafeMutablePointer<CChar>?>,
            UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<UnsafePointer<CChar>?>,
            [UnsafeMutablePointer<CChar>?]
        ) -> T
    ) -> T {
        let constant = lists.map { $0.map { UnsafePointer($0) } }
        return lists[0].withUnsafeBufferPointer { argv in
            lists[1].withUnsafeBufferPointer { envp in
                constant[2].withUnsafeBufferPointer { sources in
                    constant[3].withUnsafeBufferPointer { targets in
                        constant[4].withUnsafeBufferPointer { procs in
                            body(argv.baseAddress!, envp.baseAddress!, sources.baseAddress!, targets.baseAddress!, procs.baseAddress!, lists[5])
                        }
                    }
                }
            }
        }
    }
}
