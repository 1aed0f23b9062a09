// The agent's worker (swarmkit's agent/worker.go): follows the node's assignments from the
// dispatcher and makes the node match them — a task meant to run is prepared and started,
// one meant to stop is stopped (SIGTERM, then SIGKILL after its grace period), one that left
// the set is stopped and its files removed — and reports every task's observed state back,
// batched. Tasks keep running while the session is down; their reports wait for the next
// session. At start it removes whatever a previous run of the daemon left (processes,
// namespaces, cgroups), since it cannot wait for processes that are no longer its children.

import ClusterAPI
import Foundation
import GRPCCore
import HostNet
import Logging
import SwiftProtobuf

/// Runs this node's tasks.
public actor TaskWorker {
    private let directory: String
    private let logger: Logger
    /// The node's data plane, once the node is in a swarm.
    private var network: NodeNetwork?
    /// The most a task's stdout or stderr file holds before it is rotated (one older file kept).
    public static let logLimit = 10 << 20
    /// How long a task stays up after it left DNS and the load balancer, before its stop signal.
    public static let drainDelay: Duration = .seconds(2)
    /// Tasks as last assigned, by ID.
    private var assigned: [String: Shoal_Api_Task] = [:]
    /// Tasks with a sandbox on this node, and the Swift task driving each.
    private var runners: [String: (runner: TaskRunner, driver: Task<Void, Never>)] = [:]
    /// Observed states not yet accepted by a dispatcher, by task ID (the latest wins).
    private var pending: [String: Shoal_Api_TaskStatus] = [:]
    /// The last state reported per task, so none is reported twice or backwards.
    private var reported: [String: Shoal_Api_TaskState] = [:]
    /// Tasks being stopped.
    private var stopping: Set<String> = []
    /// Tasks whose previous daemon's sandbox was removed at start, to report once assigned.
    private var lostAtRestart: Set<String> = []

    /// A worker keeping its tasks' files under `directory` (the data dir's `tasks`).
    public init(directory: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    /// Sets (or clears) the data plane tasks are attached to.
    public func use(_ network: NodeNetwork?) { self.network = network }

    /// Removes every sandbox a previous run left; their tasks are reported failed once the
    /// managers assign them again. Call before the first session.
    public func removeLeftovers() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for entry in entries {
            if let record = SandboxRecord.load(from: "\(directory)/\(entry)"), record.holdsAnything {
                logger.info("removing a task left by the previous daemon", metadata: ["task": "\(record.taskID)"])
                record.removeSandbox()
                lostAtRestart.insert(record.taskID)
            }
            try? FileManager.default.removeItem(atPath: "\(directory)/\(entry)")
        }
    }

    /// Serves one session: follows its assignments stream and flushes reports on it, until
    /// either fails or the session is cancelled.
    public func serve(sessionID: String, connection: APIConnection) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.followAssignments(sessionID: sessionID, connection: connection) }
            group.addTask { try await self.flushReports(sessionID: sessionID, connection: connection) }
            try await group.next()
            group.cancelAll()
        }
    }

    // MARK: - Assignments

    private func followAssignments(sessionID: String, connection: APIConnection) async throws {
        var request = Shoal_Api_AssignmentsRequest()
        request.sessionID = sessionID
        try await connection.dispatcher.assignments(request) { response in
            for try await message in response.messages { await self.apply(message) }
        }
        throw APIError(.unavailable, "the assignments stream ended")
    }

    private func apply(_ message: Shoal_Api_AssignmentsMessage) {
        var tasks = message.type == .complete ? [:] : assigned
        for change in message.changes {
            guard case .task(let task) = change.assignment.item else { continue }
            if change.action == .remove { tasks[task.id] = nil } else { tasks[task.id] = task }
        }
        let gone = Set(assigned.keys).union(runners.keys).subtracting(tasks.keys)
        assigned = tasks
        for id in gone { forget(id) }
        for task in tasks.values.sorted(by: { $0.id < $1.id }) { reconcile(task) }
    }

    /// Makes the node match what `task` asks.
    private func reconcile(_ task: Shoal_Api_Task) {
        let observed = max(task.status.state.rawValue, reported[task.id]?.rawValue ?? 0)
        let ended = observed > Shoal_Api_TaskState.running.rawValue
        let wantsRunning = task.desiredState.rawValue <= Shoal_Api_TaskState.running.rawValue
        if lostAtRestart.remove(task.id) != nil, !ended {
            report(task.id, .failed, message: "failed", error: "task: its node's daemon restarted and removed it", exitCode: -1)
            return
        }
        if let (runner, _) = runners[task.id] {
            if !wantsRunning { stop(runner) }
            return
        }
        guard !ended else { return }
        if wantsRunning {
            start(task)
        } else {
            // Never started here: nothing to stop.
            report(task.id, .shutdown, message: "shutdown")
        }
    }

    private func start(_ task: Shoal_Api_Task) {
        let runner = TaskRunner(task: task, directory: "\(directory)/\(task.id)")
        report(task.id, .accepted, message: "accepted")
        let driver = Task {
            self.report(task.id, .preparing, message: "preparing")
            let network = await self.network
            do {
                try runner.prepare()
                try await network?.attach(task, namespace: runner.namespaceName)
                try runner.launch()
            } catch {
                await network?.detach(task.id)
                runner.removeSandbox()
                self.report(task.id, .failed, message: "failed", error: "starting task failed: \(error)", exitCode: -1)
                self.finished(task.id)
                return
            }
            // With a health check the task is STARTING, reachable but in no name and behind no
            // VIP, until a check passes; without one it is RUNNING and serving at once.
            let check = HealthCheck(task.spec.process.healthcheck)
            if check == nil {
                self.report(task.id, .running, message: "started", pid: runner.processID)
                await network?.publish(task.id)
            } else {
                self.report(task.id, .starting, message: "starting", pid: runner.processID)
                await network?.publish(task.id, serving: false)
            }
            let monitoring = check.map { check in Task { await self.monitorHealth(of: runner, check) } }
            let capping = Task.detached {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(2))
                    runner.capLogs(limit: Self.logLimit)
                }
            }
            let outcome = await runner.waitForExit()
            capping.cancel()
            monitoring?.cancel()
            await network?.detach(task.id)
            runner.removeSandbox()
            self.report(task.id, outcome.state, message: outcome.message, error: outcome.error, exitCode: outcome.exitCode)
            self.finished(task.id)
        }
        runners[task.id] = (runner, driver)
    }

    /// The task's process ended and its sandbox is gone; its files stay until it leaves the set.
    private func finished(_ id: String) {
        stopping.remove(id)
        guard let (runner, _) = runners.removeValue(forKey: id) else { return }
        if assigned[id] == nil { runner.removeFiles() }
    }

    /// The task left the set: stop it if it runs, remove its files.
    private func forget(_ id: String) {
        reported[id] = nil
        pending[id] = nil
        if let (runner, driver) = runners[id] {
            stop(runner)
            Task {
                await driver.value
                runner.removeFiles()
            }
        } else {
            try? FileManager.default.removeItem(atPath: "\(directory)/\(id)")
        }
    }

    // MARK: - Sandboxes from outside

    /// The pid of the task's process, when it runs here.
    public func processID(of taskID: String) -> Int32? {
        guard let (runner, _) = runners[taskID], !stopping.contains(taskID) else { return nil }
        let pid = runner.processID
        return pid > 0 ? pid : nil
    }

    /// Where the output of the local task `taskID` is, if it has any here.
    public func logFiles(of taskID: String) -> (stdout: String, stderr: String)? {
        let base = "\(directory)/\(taskID)"
        guard FileManager.default.fileExists(atPath: base) else { return nil }
        return ("\(base)/stdout.log", "\(base)/stderr.log")
    }

    /// Emits the recorded lines of `taskIDs` (the last `tail` of each, or all), then, when
    /// following, what they write next until cancelled.
    public nonisolated func streamLogs(
        of taskIDs: [String], tail: Int, follow: Bool, emit: @Sendable (String, Data, Bool) async throws -> Void
    ) async throws {
        var readers: [(id: String, stderr: Bool, reader: LogFileReader)] = []
        for id in taskIDs {
            guard let files = await logFiles(of: id) else { continue }
            readers.append((id, false, LogFileReader(path: files.stdout)))
            readers.append((id, true, LogFileReader(path: files.stderr)))
        }
        for index in readers.indices {
            let lines = readers[index].reader.readLines()
            for line in tail > 0 ? Array(lines.suffix(tail)) : lines { try await emit(readers[index].id, line, readers[index].stderr) }
        }
        while follow && !Task.isCancelled {
            try await Task.sleep(for: .milliseconds(200))
            for index in readers.indices {
                for line in readers[index].reader.readLines() { try await emit(readers[index].id, line, readers[index].stderr) }
            }
        }
    }

    // MARK: - Reports

    private func report(
        _ id: String, _ state: Shoal_Api_TaskState, message: String, error: String = "", exitCode: Int32 = 0, pid: Int32 = 0
    ) {
        guard state.rawValue > (reported[id]?.rawValue ?? 0) else { return }
        reported[id] = state
        var status = Shoal_Api_TaskStatus()
        status.state = state
        status.message = message
        status.err = error
        status.timestamp = Google_Protobuf_Timestamp(date: Date())
        status.process.exitCode = exitCode
        status.process.pid = pid
        pending[id] = status
        logger.debug("task state", metadata: ["task": "\(id)", "state": "\(state)", "error": "\(error)"])
    }

    private func takePending() -> [Shoal_Api_UpdateTaskStatusRequest.TaskStatusUpdate] {
        let batch = pending.keys.sorted().map { id in
            var update = Shoal_Api_UpdateTaskStatusRequest.TaskStatusUpdate()
            update.taskID = id
            update.status = pending[id]!
            return update
        }
        pending = [:]
        return batch
    }

    private func restore(_ batch: [Shoal_Api_UpdateTaskStatusRequest.TaskStatusUpdate]) {
        for update in batch where (pending[update.taskID]?.state.rawValue ?? 0) < update.status.state.rawValue {
            pending[update.taskID] = update.status
        }
    }

    /// Sends what is pending every 100 ms; a batch that fails is kept for the next try.
    private func flushReports(sessionID: String, connection: APIConnection) async throws {
        while !Task.isCancelled {
            let batch = takePending()
            if !batch.isEmpty {
                var request = Shoal_Api_UpdateTaskStatusRequest()
                request.sessionID = sessionID
                request.updates = batch
                do {
                    _ = try await connection.dispatcher.updateTaskStatus(request, options: callOptions(timeout: .seconds(5)))
                } catch {
                    restore(batch)
                    throw error
                }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Stops a task the way swarm does: out of DNS and the load balancer first, then after
    /// the drain delay its stop signal (and SIGKILL after its grace period). Once only. With
    /// `failure`, the task ends FAILED with it as its error (it turned unhealthy).
    private func stop(_ runner: TaskRunner, failing failure: String? = nil) {
        guard stopping.insert(runner.task.id).inserted else { return }
        let network = self.network
        Task {
            await network?.withdraw(runner.task.id)
            if network != nil { try? await Task.sleep(for: Self.drainDelay) }
            runner.stop(failing: failure)
        }
    }

    /// Runs the task's health check until it ends: the first check that passes puts it in its
    /// service's rotation (RUNNING); `retries` failures in a row take it out and fail it, and
    /// its orchestrator replaces it.
    private func monitorHealth(of runner: TaskRunner, _ check: HealthCheck) async {
        let id = runner.task.id
        let started = ContinuousClock.now
        var health = HealthState()
        let timeout = Double(check.timeout.components.seconds) + Double(check.timeout.components.attoseconds) / 1e18
        while !Task.isCancelled {
            try? await Task.sleep(for: check.interval)
            guard !Task.isCancelled, !stopping.contains(id) else { return }
            var summary = "no output"
            var passed = false
            do {
                let result = try await runner.execute(check.command, timeoutSeconds: timeout)
                passed = result.status == 0 && !result.timedOut
                let output = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
                summary = result.timedOut ? "timed out after \(check.timeout)" : "exit \(result.status)\(output.isEmpty ? "" : ": " + output.prefix(200))"
            } catch {
                summary = "\(error)"
            }
            guard !Task.isCancelled, !stopping.contains(id) else { return }
            let before = health.status
            switch health.record(passed: passed, elapsed: ContinuousClock.now - started, of: check) {
            case .healthy where before == .starting:
                report(id, .running, message: "started", pid: runner.processID)
                await network?.publish(id)
            case .unhealthy:
                logger.info("task unhealthy", metadata: ["task": "\(id)", "check": "\(summary)"])
                stop(runner, failing: "task: unhealthy: \(check.retries) health checks failed in a row (last: \(summary))")
                return
            default:
                break
            }
        }
    }

    /// Runs `command` in the sandbox of the local task `taskID` (`shoal exec`): its output as it
    /// comes, then its exit status.
    public func execute(
        in taskID: String, command: [String], environment: [String]
    ) throws(APIError) -> AsyncStream<ExecOutput> {
        guard let (runner, _) = runners[taskID], !stopping.contains(taskID), runner.processID > 0 else {
            throw APIError(.notFound, "task \(taskID.prefix(12)) does not run on this node (any more)", objectID: taskID)
        }
        do {
            return try runner.stream(command, environment: environment, timeoutSeconds: 3600)
        } catch {
            throw APIError(.unavailable, "cannot run the command in the task's sandbox: \(error)")
        }
    }

    /// Stops every task (the daemon is leaving the swarm): each gets its stop signal and grace.
    public func stopAll() async {
        for (runner, _) in runners.values { stop(runner) }
        for (_, driver) in runners.values { await driver.value }
    }
}
