import ArgumentParser
import ClusterAPI
import Foundation

/// `service create` and `service scale` without `--detach`: wait until the service's tasks run
/// and stay running, showing progress as swarm does — on a terminal the live display (one bar
/// per slot), otherwise one line per change — then `verify: Service NAME converged`. Ctrl-C
/// leaves the operation going and says so.
enum ServiceProgress {
    /// How long every task must stay running before the service counts as converged.
    static let stability: TimeInterval = 5

    /// A service's running and desired task counts, as REPLICAS shows them.
    struct Count: Equatable {
        var running = 0
        var desired = 0

        init(_ service: Shoal_Api_Service, tasks: [Shoal_Api_Task]) {
            let meant = tasks.filter { $0.desiredState == .running }
            running = meant.filter { $0.status.state == .running }.count
            desired = service.isGlobal ? meant.count : Int(service.spec.replicated.replicas)
        }
    }

    /// Polls until converged; a failing task's error is shown as it appears.
    static func wait(for serviceID: String, daemon: DaemonAddress) async throws {
        let interrupt = Interruption.install()
        defer { interrupt.remove() }
        let live = isatty(STDOUT_FILENO) == 1
        var last: Count?
        var lastErrors: Set<String> = []
        var stableSince: Date?
        var drawn = 0
        var announcedVerify = false
        while true {
            if interrupt.happened {
                print("\nOperation continuing in background.\nUse `shoal service ps \(serviceID.prefix(12))` to check progress.")
                throw ExitCode(130)
            }
            let (service, tasks) = try await daemon.call { connection in
                var get = Shoal_Api_GetServiceRequest()
                get.serviceID = serviceID
                let service = try await connection.control.getService(get, options: cliCallOptions).service
                var list = Shoal_Api_ListTasksRequest()
                list.filters.serviceIds = [serviceID]
                return (service, try await connection.control.listTasks(list, options: cliCallOptions).tasks)
            }
            let count = Count(service, tasks: tasks)
            let converging = count.running == count.desired && tasks.filter({ $0.desiredState == .running }).count == count.desired
            if converging {
                if stableSince == nil { stableSince = Date() }
            } else {
                stableSince = nil
            }
            let done = stableSince.map { Date().timeIntervalSince($0) >= stability } ?? false
            if live {
                var lines = ["overall progress: \(count.running) out of \(count.desired) tasks"]
                lines += Self.bars(service, tasks: tasks)
                if stableSince != nil { lines.append(done ? "verify: Service \(service.spec.annotations.name) converged" : "verify: Waiting \(Int(stability)) seconds to verify that tasks are stable...") }
                // Redraw in place: up over what was drawn, then each line cleared and written.
                var frame = drawn > 0 ? "\u{1B}[\(drawn)A" : ""
                for line in lines { frame += "\r\u{1B}[2K" + line + "\n" }
                FileHandle.standardOutput.write(Data(frame.utf8))
                drawn = lines.count
            } else {
                if count != last { print("overall progress: \(count.running) out of \(count.desired) tasks") }
                let errors = Set(tasks.filter { $0.desiredState == .running && !$0.status.err.isEmpty }.map { "\($0.annotations.name): \($0.status.err)" })
                for error in errors.subtracting(lastErrors).sorted() { print(error) }
                lastErrors = errors
                if stableSince != nil && !announcedVerify {
                    print("verify: Waiting \(Int(stability)) seconds to verify that tasks are stable...")
                }
                if done { print("verify: Service \(service.spec.annotations.name) converged") }
            }
            last = count
            announcedVerify = stableSince != nil
            if done { return }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// One line per slot (or node, for a global service): `1/3: running   [====>   ]`, the
    /// bar at swarm's step for the task's state.
    static func bars(_ service: Shoal_Api_Service, tasks: [Shoal_Api_Task]) -> [String] {
        let meant = tasks.filter { $0.desiredState == .running }.sorted { ($0.slot, $0.nodeID) < ($1.slot, $1.nodeID) }
        let total = meant.count
        return meant.enumerated().map { index, task in
            let steps: [Shoal_Api_TaskState] = [.new, .pending, .assigned, .accepted, .preparing, .ready, .starting, .running]
            let step = (steps.firstIndex(of: task.status.state) ?? (task.status.state.rawValue > Shoal_Api_TaskState.running.rawValue ? steps.count - 1 : 0)) + 1
            let width = 50
            let filled = width * step / steps.count
            let bar = String(repeating: "=", count: max(filled - 1, 0)) + ">" + String(repeating: " ", count: width - filled)
            let state = TaskText.state(task.status.state).lowercased()
            let label = "\(task.slot == 0 ? index + 1 : Int(task.slot))/\(total): \(state)".padding(toLength: 7 + String(total).count * 2 + 9, withPad: " ", startingAt: 0)
            return task.status.err.isEmpty ? "\(label)[\(bar)]" : "\(label)\(task.status.err)"
        }
    }
}

/// Ctrl-C while waiting: noted, not fatal, so the wait can say what happens next.
final class Interruption: @unchecked Sendable {
    // @unchecked: `flag` is written by the signal source's queue and read by the waiter.
    private var flag = false
    private var source: DispatchSourceSignal?

    var happened: Bool { flag }

    static func install() -> Interruption {
        let interruption = Interruption()
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { interruption.flag = true }
        source.resume()
        interruption.source = source
        return interruption
    }

    func remove() {
        source?.cancel()
        signal(SIGINT, SIG_DFL)
    }
}
