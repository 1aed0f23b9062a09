// `shoal exec` and `shoal service logs` (taskio.proto): every node serves its own tasks'
// sandboxes; a manager asked about a task elsewhere finds the task's node through the
// Control API and forwards the call to that node's 2377 under the cluster's mutual TLS. Only
// the operator (the Unix socket) and managers may call: a worker's certificate reaches no
// other node's tasks.

import Agent
import ClusterAPI
import ControlPlane
import Foundation
import GRPCCore
import HostNet
import SwiftProtobuf

struct TaskIOService: Shoal_Api_TaskIO.ServiceProtocol {
    let daemon: Daemon
    let authorizer: Authorizer

    // MARK: - Exec

    func exec(
        request: ServerRequest<Shoal_Api_ExecRequest>, context: ServerContext
    ) async throws -> StreamingServerResponse<Shoal_Api_ExecResponse> {
        do {
            try authorizer.requireManager(context)
            let message = request.message
            guard !message.command.isEmpty else { throw APIError(.invalidSpec, "exec needs a command", field: "command") }
            // A full ID of a task running here (as a forwarding manager sends it) needs no lookup.
            if await daemon.worker.processID(of: message.task) != nil {
                return Self.relay(try await daemon.worker.execute(in: message.task, command: message.command, environment: message.env))
            }
            let (task, node) = try await daemon.locateRunningTask(message.task)
            if node.id != (await daemon.nodeIDNow) {
                let forwarded = {
                    var forwarded = message
                    forwarded.task = task.id
                    return forwarded
                }()
                let connection = try await daemon.connection(to: node)
                // Each piece goes on as the node sends it: a long command's output is seen live.
                return StreamingServerResponse { writer in
                    do {
                        try await connection.taskIO.exec(forwarded) { response in
                            for try await item in response.messages { try await writer.write(item) }
                        }
                    } catch {
                        throw APIError(error).rpcError
                    }
                    return [:]
                }
            }
            return Self.relay(try await daemon.worker.execute(in: task.id, command: message.command, environment: message.env))
        } catch {
            throw APIError(error).rpcError
        }
    }

    /// A local command's output, piece by piece as it comes, then its exit status, as the
    /// stream Exec answers. A caller that goes away ends the stream, which kills the command.
    private static func relay(_ output: AsyncStream<ExecOutput>) -> StreamingServerResponse<Shoal_Api_ExecResponse> {
        StreamingServerResponse { writer in
            for await piece in output {
                var item = Shoal_Api_ExecResponse()
                switch piece {
                case .standardOutput(let bytes): item.stdout = Data(bytes)
                case .standardError(let bytes): item.stderr = Data(bytes)
                case .exit(let status): item.exitCode = status
                }
                try await writer.write(item)
            }
            return [:]
        }
    }

    // MARK: - Logs

    func logs(
        request: ServerRequest<Shoal_Api_LogsRequest>, context: ServerContext
    ) async throws -> StreamingServerResponse<Shoal_Api_LogsResponse> {
        do {
            try authorizer.requireManager(context)
            let message = request.message
            guard !message.service.isEmpty || !message.task.isEmpty || !message.taskIds.isEmpty else {
                throw APIError(.invalidSpec, "logs needs a service or a task")
            }
            if !message.taskIds.isEmpty {
                // A manager asks this node for its own tasks' files.
                let worker = daemon.worker
                return StreamingServerResponse { writer in
                    try await worker.streamLogs(of: message.taskIds, tail: Int(message.tail), follow: message.follow) { id, line, stderr in
                        var response = Shoal_Api_LogsResponse()
                        response.taskID = id
                        response.line = line
                        response.stderr = stderr
                        try await writer.write(response)
                    }
                    return [:]
                }
            }
            let placed = try await daemon.tasksForLogs(message)
            let daemon = self.daemon
            return StreamingServerResponse { writer in
                var opened: [APIConnection] = []
                defer { opened.forEach { $0.close() } }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (node, tasks) in placed {
                        var request = message
                        request.taskIds = tasks.map(\.task.id)
                        let prefixes = Dictionary(uniqueKeysWithValues: tasks.map { ($0.task.id, $0.prefix) })
                        // Through this node's own socket for its own tasks; pooled for others.
                        let local = node.id == (await daemon.nodeIDNow)
                        let connection = local ? try await daemon.localConnection() : try await daemon.connection(to: node)
                        if local { opened.append(connection) }
                        group.addTask {
                            try await connection.taskIO.logs(request) { response in
                                for try await var line in response.messages {
                                    line.prefix = prefixes[line.taskID] ?? line.taskID
                                    try await writer.write(line)
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                return [:]
            }
        } catch {
            throw APIError(error).rpcError
        }
    }
}

extension Daemon {
    /// This node's ID, once joined.
    var nodeIDNow: String { joined?.membership.nodeID ?? "" }

    /// A connection to this daemon's own Unix socket (the one typed API, also from inside).
    func localConnection() throws -> APIConnection {
        try APIConnection(to: .unixSocket(path: configuration.socketPath))
    }

    /// A connection to `node`'s 2377, as this node (mutual TLS).
    func connection(to node: Shoal_Api_Node) throws(APIError) -> APIConnection {
        guard let connections = joined?.connections else { throw APIError(.notManager, "this node is not in a swarm") }
        guard !node.status.addr.isEmpty else { throw APIError(.unavailable, "node \(node.spec.annotations.name) has no known address") }
        do { return try connections.connection(to: node.status.addr) } catch { throw APIError(error) }
    }

    /// The task `reference` names — an ID, an ID prefix, or SERVICE.SLOT (its task meant to
    /// run) — and its node, asked of the managers through the Control API.
    func locateRunningTask(_ reference: String) async throws(APIError) -> (Shoal_Api_Task, Shoal_Api_Node) {
        do {
            let connection = try localConnection()
            defer { connection.close() }
            var byName = Shoal_Api_ListTasksRequest()
            byName.filters.names = [reference]
            byName.filters.desiredStates = [.running]
            var task = try await connection.control.listTasks(byName, options: callOptions(timeout: .seconds(10))).tasks
                .max { $0.meta.createdAt.date < $1.meta.createdAt.date }
            if task == nil {
                var get = Shoal_Api_GetTaskRequest()
                get.taskID = reference
                task = try await connection.control.getTask(get, options: callOptions(timeout: .seconds(10))).task
            }
            guard let task else { throw APIError(.notFound, "task \(reference) not found", objectID: reference) }
            guard task.status.state == .running, !task.nodeID.isEmpty else {
                throw APIError(.failedPrecondition, "task \(task.annotations.name) (\(task.id.prefix(12))) is not running", objectID: task.id)
            }
            var node = Shoal_Api_GetNodeRequest()
            node.nodeID = task.nodeID
            return (task, try await connection.control.getNode(node, options: callOptions(timeout: .seconds(10))).node)
        } catch {
            throw APIError(error)
        }
    }

    /// The tasks whose output `request` asks for, by node, each with its line prefix
    /// NAME.SLOT.ID@NODE.
    func tasksForLogs(_ request: Shoal_Api_LogsRequest) async throws(APIError) -> [(Shoal_Api_Node, [(task: Shoal_Api_Task, prefix: String)])] {
        do {
            let connection = try localConnection()
            defer { connection.close() }
            var tasks: [Shoal_Api_Task]
            if !request.task.isEmpty {
                tasks = [try await locateRunningTask(request.task).0]
            } else {
                var get = Shoal_Api_GetServiceRequest()
                get.serviceID = request.service
                let service = try await connection.control.getService(get, options: callOptions(timeout: .seconds(10))).service
                var list = Shoal_Api_ListTasksRequest()
                list.filters.serviceIds = [service.id]
                tasks = try await connection.control.listTasks(list, options: callOptions(timeout: .seconds(10))).tasks
                    .filter { !$0.nodeID.isEmpty && $0.status.state.rawValue >= Shoal_Api_TaskState.running.rawValue }
            }
            let nodes = try await connection.control.listNodes(.init(), options: callOptions(timeout: .seconds(10))).nodes
            var placed: [(Shoal_Api_Node, [(task: Shoal_Api_Task, prefix: String)])] = []
            for node in nodes {
                let here = tasks.filter { $0.nodeID == node.id }.sorted { $0.annotations.name < $1.annotations.name }
                guard !here.isEmpty else { continue }
                let hostname = node.nodeDescription.hostname.isEmpty ? node.spec.annotations.name : node.nodeDescription.hostname
                placed.append((node, here.map { ($0, "\($0.annotations.name).\($0.id.prefix(12))@\(hostname)") }))
            }
            return placed
        } catch {
            throw APIError(error)
        }
    }
}
