// One task on this node, as a real process in a sandbox (DESIGN §9): its own network
// namespace, mount namespace with its own /etc/resolv.conf (127.0.0.11) and /etc/hosts, its
// hostname (`--hostname` or the task's short ID), its cgroups with the service's limits,
// and its output appended to files in the task's directory. A record of what was made is
// written before each thing is made, so a daemon that restarts finds and removes all of it.

import ClusterAPI
import Foundation
import Glibc
import HostNet

/// How a task's process ended, in the words `service ps` shows.
struct TaskOutcome: Equatable {
    var state: Shoal_Api_TaskState
    var message: String
    var error: String
    var exitCode: Int32
}

/// What a command run in a task's sandbox (`shoal exec`) produced, piece by piece.
public enum ExecOutput: Sendable, Equatable {
    /// Bytes it wrote on standard output.
    case standardOutput([UInt8])
    /// Bytes it wrote on standard error.
    case standardError([UInt8])
    /// Its exit status (128 + N when signal N ended it); the last piece.
    case exit(Int32)
}

/// The sandbox and process of one task.
final class TaskRunner: @unchecked Sendable {
    // @unchecked: used by one driving Swift task at a time (the worker's), plus `stop`, which
    // only signals and sets a flag under the lock.
    let task: Shoal_Api_Task
    let directory: String
    private let lock = NSLock()
    private var record: SandboxRecord
    private var process: SandboxedProcess?
    private var stopping = false
    /// Why the task failed though its process did not (it turned unhealthy), once known.
    private var failure: String?

    /// Where a task's files live: `tasks/ID` in the agent's directory.
    init(task: Shoal_Api_Task, directory: String) {
        self.task = task
        self.directory = directory
        record = SandboxRecord(taskID: task.id)
    }

    var outputFile: String { "\(directory)/stdout.log" }
    var errorFile: String { "\(directory)/stderr.log" }

    /// The hostname inside the sandbox.
    var hostname: String { task.spec.process.hostname.isEmpty ? String(task.id.prefix(12)) : task.spec.process.hostname }

    /// The task's network namespace.
    var namespaceName: String { "shoal-t-\(task.id.prefix(12))" }
    private var prepared: (files: [(source: String, target: String)], namespace: NetworkNamespace, group: ControlGroup)?

    /// Builds the sandbox: files, network namespace, cgroups. On failure what was made is removed.
    func prepare() throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try writeRecord()
            let files = try writeEtcFiles()
            record.namespace = namespaceName
            try writeRecord()
            if NetworkNamespace(named: namespaceName).exists { try NetworkNamespace(named: namespaceName).delete() }
            let namespace = try NetworkNamespace.create(named: namespaceName)
            let limits = task.spec.resources.limits
            let group = try ControlGroup.create(named: "task-\(task.id)", memoryLimit: limits.memoryBytes, nanoCPUs: limits.nanoCpus)
            record.controlGroup = group
            try writeRecord()
            prepared = (files, namespace, group)
        } catch {
            removeSandbox()
            throw error
        }
    }

    /// Starts the process in the prepared sandbox. On failure the sandbox is removed.
    func launch() throws {
        do {
            guard let (files, namespace, group) = prepared else { throw HostNetError("launch", task.id, errno: EINVAL) }
            var spec = SandboxSpec(command: task.spec.process.command + task.spec.process.args)
            spec.environment = task.spec.process.env
            spec.hostname = hostname
            spec.newPIDNamespace = task.spec.process.pidNamespace
            spec.networkNamespace = namespace
            spec.bindMounts = files
            spec.controlGroup = group
            spec.workingDirectory = task.spec.process.dir.isEmpty ? nil : task.spec.process.dir
            spec.outputFile = outputFile
            spec.errorFile = errorFile
            let process = try SandboxedProcess(spec)
            lock.withLock { self.process = process }
            record.process = process.identity
            try writeRecord()
        } catch {
            removeSandbox()
            throw error
        }
    }

    /// The process's pid, once started.
    var processID: Int32 { lock.withLock { process?.identity.pid ?? 0 } }

    /// Waits for the process to end and says how it ended.
    func waitForExit() async -> TaskOutcome {
        guard let process = lock.withLock({ process }) else {
            return TaskOutcome(state: .failed, message: "failed", error: "task: never started", exitCode: -1)
        }
        let exit = await process.waitForExit()
        let (stopped, failure) = lock.withLock { (stopping, self.failure) }
        let code: Int32 = switch exit {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
        if let failure { return TaskOutcome(state: .failed, message: "failed", error: failure, exitCode: code) }
        switch exit {
        case .exited(0):
            return TaskOutcome(state: stopped ? .shutdown : .complete, message: stopped ? "shutdown" : "finished", error: "", exitCode: 0)
        case .exited(let code):
            if stopped { return TaskOutcome(state: .shutdown, message: "shutdown", error: "", exitCode: code) }
            return TaskOutcome(state: .failed, message: "failed", error: "task: non-zero exit (\(code))", exitCode: code)
        case .signaled(let signal):
            if signal == SIGKILL, let group = record.controlGroup, group.memoryLimitKills > 0 {
                return TaskOutcome(
                    state: .failed, message: "failed",
                    error: "task: killed by the memory limit (\(task.spec.resources.limits.memoryBytes) bytes)", exitCode: 128 + signal)
            }
            if stopped { return TaskOutcome(state: .shutdown, message: "shutdown", error: "", exitCode: 128 + signal) }
            return TaskOutcome(state: .failed, message: "failed", error: "task: killed by signal \(signal)", exitCode: 128 + signal)
        }
    }

    /// Asks the process to stop: SIGTERM (or the spec's stop signal), then SIGKILL after the
    /// grace period (the spec's, 10 s by default). Returns at once; `waitForExit` ends, with
    /// the task FAILED and `failure` as its error when one is given.
    func stop(failing failure: String? = nil) {
        let process: SandboxedProcess? = lock.withLock {
            stopping = true
            if self.failure == nil { self.failure = failure }
            return self.process
        }
        guard let process else { return }
        process.signal(Self.signal(named: task.spec.process.stopSignal) ?? SIGTERM)
        let grace = task.spec.process.hasStopGracePeriod ? task.spec.process.stopGracePeriod.timeInterval : 10
        let identity = process.identity
        Thread.detachNewThread {
            let deadline = Date().addingTimeInterval(grace)
            while identity.isAlive && Date() < deadline { usleep(20_000) }
            if identity.isAlive { kill(identity.pid, SIGKILL) }
        }
    }

    /// Runs `command` in the task's namespaces (network, mount, UTS) with nsenter, with the
    /// task's environment and then `environment`, to completion or until `timeoutSeconds`
    /// (killed then). On a thread of its own: the command may run for seconds, and a
    /// cooperative thread (two on this kind of machine) must not wait that long.
    func execute(_ command: [String], environment: [String] = [], timeoutSeconds: Double) async throws(HostNetError) -> NamespacedProcess.Result {
        let argv = try sandboxCommand(command, environment: environment)
        let result: Result<NamespacedProcess.Result, HostNetError> = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                do throws(HostNetError) {
                    continuation.resume(returning: .success(try NamespacedProcess.run(argv, timeoutSeconds: timeoutSeconds)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    /// Starts `command` as ``execute(_:environment:timeoutSeconds:)`` does and streams what it
    /// writes, standard output and standard error apart, as it writes it, then its exit status.
    /// The stream holds at most 64 pieces: a reader that falls behind slows the command down
    /// (its pipe fills), and one that stops reading gets the command killed.
    func stream(_ command: [String], environment: [String] = [], timeoutSeconds: Double) throws(HostNetError) -> AsyncStream<ExecOutput> {
        let process = try NamespacedProcess(try sandboxCommand(command, environment: environment), separateStandardError: true)
        let (stream, continuation) = AsyncStream.makeStream(of: ExecOutput.self, bufferingPolicy: .bufferingOldest(64))
        Thread.detachNewThread {
            let deadline = Date().addingTimeInterval(timeoutSeconds)
            // Bounded by the command's deadline: waits 1 ms at a time while the stream is full.
            func hand(_ item: ExecOutput) -> Bool {
                while true {
                    switch continuation.yield(item) {
                    case .enqueued: return true
                    case .terminated: return false
                    case .dropped:
                        guard Date() < deadline else { return false }
                        usleep(1_000)
                    @unknown default: return false
                    }
                }
            }
            let (status, _) = process.stream(timeoutSeconds: timeoutSeconds) { bytes, isStandardError in
                hand(isStandardError ? .standardError(Array(bytes)) : .standardOutput(Array(bytes)))
            }
            _ = hand(.exit(status))
            continuation.finish()
        }
        return stream
    }

    /// The command line that runs `command` inside this task's namespaces with nsenter.
    private func sandboxCommand(_ command: [String], environment: [String]) throws(HostNetError) -> [String] {
        let pid = processID
        guard pid > 0 else { throw HostNetError("exec", task.id, errno: ESRCH) }
        // In a task's own PID namespace the command joins it too (nsenter forks into it), so it
        // sees the task's processes and its /proc.
        let namespaces = ["--net", "--mount", "--uts"] + (task.spec.process.pidNamespace ? ["--pid"] : [])
        return ["nsenter", "--target", "\(pid)"] + namespaces + ["--", "env"] + task.spec.process.env + environment + command
    }

    /// Keeps each output file under `limit` bytes: a file past it becomes `.1` (replacing the
    /// older one) and starts again empty; the process, appending, writes on at the new end.
    func capLogs(limit: Int) {
        for path in [outputFile, errorFile] {
            guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > limit else { continue }
            let rotated = path + ".1"
            try? FileManager.default.removeItem(atPath: rotated)
            try? FileManager.default.copyItem(atPath: path, toPath: rotated)
            truncate(path, 0)
        }
    }

    /// Removes the namespace and the cgroups (killing what is left in them); keeps the logs.
    func removeSandbox() {
        record.removeSandbox()
        record.namespace = nil
        record.controlGroup = nil
        record.process = nil
        try? writeRecord()
    }

    /// Removes the whole task directory (the task is gone from the store).
    func removeFiles() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func writeRecord() throws { try record.save(in: directory) }

    /// The task's /etc/resolv.conf (the node's DNS inside every task) and /etc/hosts.
    private func writeEtcFiles() throws -> [(source: String, target: String)] {
        let resolv = "nameserver 127.0.0.11\noptions ndots:0\n"
        var hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        for attachment in task.networks {
            for address in attachment.addresses {
                hosts += "\(address.split(separator: "/").first ?? "")\t\(hostname)\n"
            }
        }
        if task.networks.isEmpty { hosts += "127.0.1.1\t\(hostname)\n" }
        try resolv.write(toFile: "\(directory)/resolv.conf", atomically: true, encoding: .utf8)
        try hosts.write(toFile: "\(directory)/hosts", atomically: true, encoding: .utf8)
        try "\(hostname)\n".write(toFile: "\(directory)/hostname", atomically: true, encoding: .utf8)
        var files = [("\(directory)/resolv.conf", "/etc/resolv.conf"), ("\(directory)/hosts", "/etc/hosts")]
        // A bind mount needs its target: not every host has /etc/hostname.
        if FileManager.default.fileExists(atPath: "/etc/hostname") { files.append(("\(directory)/hostname", "/etc/hostname")) }
        return files
    }

    private static func signal(named name: String) -> Int32? {
        let names: [String: Int32] = ["SIGTERM": SIGTERM, "SIGINT": SIGINT, "SIGQUIT": SIGQUIT, "SIGKILL": SIGKILL, "SIGHUP": SIGHUP, "SIGUSR1": SIGUSR1, "SIGUSR2": SIGUSR2]
        let upper = name.uppercased()
        return names[upper] ?? names["SIG" + upper] ?? Int32(name)
    }
}
