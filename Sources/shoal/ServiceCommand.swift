import ArgumentParser
import ClusterAPI
import Foundation
import SwiftProtobuf

/// `shoal service …`: services and their tasks, through a manager.
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "Manage services.",
        subcommands: [Create.self, List.self, Tasks.self, Inspect.self, Scale.self, Remove.self, Logs.self])

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the output of a service's tasks (or of one task).")
        @OptionGroup var daemon: DaemonAddress
        @Flag(name: .shortAndLong, help: "Keep following the output.")
        var follow = false
        @Option(name: [.customShort("n"), .long], help: "Only the last N lines of each task (default: all).")
        var tail: String = "all"
        @Flag(help: "Do not prefix lines with the task's name.")
        var noTaskIds = false
        @Argument(help: "A service (name, ID or prefix) or a task (ID or SERVICE.SLOT).")
        var target: String

        func run() async throws {
            try await reportingFailures {
                var request = Shoal_Api_LogsRequest()
                if target.contains("."), !target.hasSuffix("."), UInt64(target.split(separator: ".").last ?? "") != nil {
                    request.task = target
                } else {
                    request.service = target
                }
                request.follow = follow
                if tail != "all" {
                    guard let count = UInt32(tail) else { throw CLIFailure("invalid --tail \(tail): a number of lines, or all") }
                    request.tail = count
                }
                try await daemon.call { connection in
                    try await connection.taskIO.logs(request, options: callOptions(timeout: .seconds(follow ? 86_400 * 365 : 60))) { response in
                        for try await line in response.messages {
                            let text = String(decoding: line.line, as: UTF8.self)
                            let shown = noTaskIds ? text : "\(line.prefix)    | \(text)"
                            if line.stderr {
                                FileHandle.standardError.write(Data((shown + "\n").utf8))
                            } else {
                                print(shown)
                            }
                        }
                    }
                }
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a service.", discussion: "The command the tasks run follows the options, after `--`.")
        @OptionGroup var daemon: DaemonAddress
        @Option(help: "The service's name.")
        var name: String
        @Option(help: "replicated or global.")
        var mode = "replicated"
        @Option(parsing: .unconditional, help: "Number of tasks (replicated mode; default 1).")
        var replicas: String?
        @Option(parsing: .singleValue, help: "Attach to a network (name or ID); repeatable.")
        var network: [String] = []
        @Option(help: "vip or dnsrr.")
        var endpointMode = "vip"
        @Option(name: [.customShort("p"), .long], parsing: .singleValue,
                help: "Publish a port: PUBLISHED:TARGET[/udp], or published=N,target=N[,protocol=tcp|udp][,mode=ingress|host][,proxy-protocol=v2]; repeatable.")
        var publish: [String] = []
        @Option(parsing: .singleValue, help: "Placement constraint, e.g. node.role==manager; repeatable.")
        var constraint: [String] = []
        @Option(help: "Maximum tasks per node (0: no limit).")
        var replicasMaxPerNode: UInt64 = 0
        @Option(help: "CPUs to reserve, e.g. 0.5.")
        var reserveCpu: String?
        @Option(help: "Memory to reserve, e.g. 256M.")
        var reserveMemory: String?
        @Option(help: "CPU limit, e.g. 1.5.")
        var limitCpu: String?
        @Option(help: "Memory limit, e.g. 512M.")
        var limitMemory: String?
        @Option(help: "any, on-failure or none.")
        var restartCondition = "any"
        @Option(help: "Wait between restarts, e.g. 5s.")
        var restartDelay = "5s"
        @Option(help: "Restarts before giving up (0: unlimited).")
        var restartMaxAttempts: UInt64 = 0
        @Option(help: "Window the attempts are counted in, e.g. 1m (default: forever).")
        var restartWindow: String?
        @Option(name: [.customShort("e"), .long], parsing: .singleValue, help: "An environment variable (KEY=VALUE); repeatable.")
        var env: [String] = []
        @Option(parsing: .singleValue, help: "A service label (key=value); repeatable.")
        var label: [String] = []
        @Option(help: "The tasks' hostname (default: the task's short ID).")
        var hostname: String?
        @Flag(name: .customLong("init"), help: "Run each task in a PID namespace of its own under an init that forwards signals and reaps processes.")
        var initProcess = false
        @Option(help: "Time between SIGTERM and SIGKILL, e.g. 10s.")
        var stopGracePeriod = "10s"
        @Option(help: "A command run in the task's sandbox to check its health (with /bin/sh -c); exit 0 is healthy.")
        var healthCmd: String?
        @Option(help: "Time between health checks, e.g. 30s.")
        var healthInterval: String?
        @Option(help: "A health check running longer than this fails, e.g. 30s.")
        var healthTimeout: String?
        @Option(help: "Failed health checks in a row that make a task unhealthy (default 3).")
        var healthRetries: Int32?
        @Option(help: "Time after start during which failed health checks do not count, e.g. 10s.")
        var healthStartPeriod: String?
        @Flag(help: "Disable any health check.")
        var noHealthcheck = false
        @Flag(name: .shortAndLong, help: "Return at once instead of waiting for the tasks to run.")
        var detach = false
        @Argument(parsing: .captureForPassthrough, help: "-- COMMAND ARGS…")
        var command: [String] = []

        /// The health check the flags ask for, as docker builds it (`CMD-SHELL` with the command).
        func healthCheck() throws -> Shoal_Api_HealthConfig {
            var check = Shoal_Api_HealthConfig()
            let tuned = healthInterval != nil || healthTimeout != nil || healthRetries != nil || healthStartPeriod != nil
            if noHealthcheck {
                guard healthCmd == nil, !tuned else { throw CLIFailure("--no-healthcheck conflicts with the --health-* options") }
                check.test = ["NONE"]
                return check
            }
            if let healthCmd { check.test = ["CMD-SHELL", healthCmd] } else if tuned {
                throw CLIFailure("the --health-* options need --health-cmd")
            }
            if let healthInterval { check.interval = try durationFlag("--health-interval", healthInterval) }
            if let healthTimeout { check.timeout = try durationFlag("--health-timeout", healthTimeout) }
            if let healthRetries { check.retries = healthRetries }
            if let healthStartPeriod { check.startPeriod = try durationFlag("--health-start-period", healthStartPeriod) }
            return check
        }

        func run() async throws {
            try await reportingFailures {
                var spec = Shoal_Api_ServiceSpec()
                spec.annotations.name = name
                spec.annotations.labels = try KeyValueText.pairs(label, flag: "--label")
                let argv = command.first == "--" ? Array(command.dropFirst()) : command
                guard let program = argv.first else { throw CLIFailure("no command given: shoal service create --name N -- COMMAND ARGS…") }
                spec.task.process.command = [program]
                spec.task.process.args = Array(argv.dropFirst())
                spec.task.process.env = env
                spec.task.process.hostname = hostname ?? ""
                spec.task.process.pidNamespace = initProcess
                spec.task.process.stopGracePeriod = try durationFlag("--stop-grace-period", stopGracePeriod)
                let check = try healthCheck()
                if !check.test.isEmpty { spec.task.process.healthcheck = check }
                switch mode {
                case "replicated": spec.replicated.replicas = try replicaCount(replicas ?? "1")
                case "global":
                    guard replicas == nil else { throw CLIFailure("--replicas is for replicated services only") }
                    spec.global = Shoal_Api_GlobalService()
                default: throw CLIFailure("invalid --mode \(mode): replicated or global")
                }
                switch endpointMode {
                case "vip": spec.endpoint.mode = .vip
                case "dnsrr": spec.endpoint.mode = .dnsrr
                default: throw CLIFailure("invalid --endpoint-mode \(endpointMode): vip or dnsrr")
                }
                spec.endpoint.ports = try publish.map(PublishText.port)
                spec.task.placement.constraints = constraint
                spec.task.placement.maxReplicas = replicasMaxPerNode
                if let reserveCpu { spec.task.resources.reservations.nanoCpus = try SizeText.nanoCPUs(reserveCpu, flag: "--reserve-cpu") }
                if let reserveMemory { spec.task.resources.reservations.memoryBytes = try SizeText.bytes(reserveMemory, flag: "--reserve-memory") }
                if let limitCpu { spec.task.resources.limits.nanoCpus = try SizeText.nanoCPUs(limitCpu, flag: "--limit-cpu") }
                if let limitMemory { spec.task.resources.limits.memoryBytes = try SizeText.bytes(limitMemory, flag: "--limit-memory") }
                switch restartCondition {
                case "any": spec.task.restart.condition = .any
                case "on-failure": spec.task.restart.condition = .onFailure
                case "none": spec.task.restart.condition = .none
                default: throw CLIFailure("invalid --restart-condition \(restartCondition): any, on-failure or none")
                }
                spec.task.restart.delay = try durationFlag("--restart-delay", restartDelay)
                spec.task.restart.maxAttempts = restartMaxAttempts
                if let restartWindow { spec.task.restart.window = try durationFlag("--restart-window", restartWindow) }
                let service = try await daemon.call { connection in
                    for reference in network {
                        var get = Shoal_Api_GetNetworkRequest()
                        get.networkID = reference
                        var attachment = Shoal_Api_NetworkAttachmentConfig()
                        attachment.target = try await connection.control.getNetwork(get, options: cliCallOptions).network.id
                        spec.task.networks.append(attachment)
                    }
                    var request = Shoal_Api_CreateServiceRequest()
                    request.spec = spec
                    return try await connection.control.createService(request, options: cliCallOptions).service
                }
                print(service.id)
                if !detach { try await ServiceProgress.wait(for: service.id, daemon: daemon) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the services.")
        @OptionGroup var daemon: DaemonAddress
        @OptionGroup var output: ListFormat
        @Flag(name: .shortAndLong, help: "Only IDs.")
        var quiet = false

        func run() async throws {
            try await reportingFailures {
                let (services, tasks) = try await daemon.call { connection in
                    (try await connection.control.listServices(.init(), options: cliCallOptions).services,
                     try await connection.control.listTasks(.init(), options: cliCallOptions).tasks)
                }
                let sorted = services.sorted { $0.spec.annotations.name < $1.spec.annotations.name }
                if quiet {
                    for service in sorted { print(ShortID.of(service.id)) }
                    return
                }
                output.emit(
                    header: ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"],
                    fields: ["ID", "Name", "Mode", "Replicas", "Image", "Ports"],
                    rows: sorted.map { service in
                        let progress = ServiceProgress.Count(service, tasks: tasks.filter { $0.serviceID == service.id })
                        return [ShortID.of(service.id), service.spec.annotations.name, service.isGlobal ? "global" : "replicated",
                                "\(progress.running)/\(progress.desired)", ServiceText.image(service.spec.task), ServiceText.ports(service)]
                    })
            }
        }
    }

    struct Tasks: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ps", abstract: "List a service's tasks.")
        @OptionGroup var daemon: DaemonAddress
        @Flag(help: "Do not truncate IDs and errors.")
        var noTrunc = false
        @Option(name: .shortAndLong, parsing: .singleValue, help: "desired-state=running|shutdown|accepted, node=N, name=N.")
        var filter: [String] = []
        @Flag(name: .shortAndLong, help: "Only task IDs.")
        var quiet = false
        @OptionGroup var output: ListFormat
        @Argument(help: "Service names, IDs or ID prefixes.")
        var services: [String]

        func run() async throws {
            try await reportingFailures {
                let filters = try KeyValueText.pairs(filter, flag: "--filter")
                let (found, tasks, nodes) = try await daemon.call { connection in
                    var found: [Shoal_Api_Service] = []
                    for reference in services {
                        var get = Shoal_Api_GetServiceRequest()
                        get.serviceID = reference
                        found.append(try await connection.control.getService(get, options: cliCallOptions).service)
                    }
                    var request = Shoal_Api_ListTasksRequest()
                    request.filters.serviceIds = found.map(\.id)
                    return (found, try await connection.control.listTasks(request, options: cliCallOptions).tasks,
                            try await connection.control.listNodes(.init(), options: cliCallOptions).nodes)
                }
                var shown = tasks
                if let wanted = filters["desired-state"] {
                    let states: [Shoal_Api_TaskState] = switch wanted {
                    case "running": [.ready, .running]
                    case "shutdown": [.shutdown, .remove, .complete]
                    case "accepted": [.accepted]
                    default: throw CLIFailure("invalid desired-state filter \(wanted): running, shutdown or accepted")
                    }
                    shown = shown.filter { states.contains($0.desiredState) }
                }
                let hostnames = Dictionary(nodes.map { ($0.id, $0.nodeDescription.hostname.isEmpty ? $0.spec.annotations.name : $0.nodeDescription.hostname) }, uniquingKeysWith: { a, _ in a })
                if let node = filters["node"] { shown = shown.filter { $0.nodeID.hasPrefix(node) || hostnames[$0.nodeID] == node } }
                if let name = filters["name"] { shown = shown.filter { $0.annotations.name == name } }
                let rows = TaskRows.ordered(shown, services: found)
                if quiet {
                    for (task, _) in rows { print(noTrunc ? task.id : ShortID.of(task.id)) }
                    return
                }
                output.emit(
                    header: ["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"],
                    fields: ["ID", "Name", "Image", "Node", "DesiredState", "CurrentState", "Error", "Ports"],
                    rows: rows.map { task, older in
                        [noTrunc ? task.id : ShortID.of(task.id), (older ? " \\_ " : "") + task.annotations.name,
                         ServiceText.image(task.spec), hostnames[task.nodeID] ?? "", TaskText.state(task.desiredState),
                         TaskText.current(task.status, now: Date()), TaskText.error(task.status.err, truncate: !noTrunc), ""]
                    })
            }
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show services in full.")
        @OptionGroup var daemon: DaemonAddress
        @Flag(help: "Human-readable output.")
        var pretty = false
        @Argument(help: "Service names, IDs or ID prefixes.")
        var services: [String]

        func run() async throws {
            try await reportingFailures {
                let found = try await daemon.call { connection in
                    var found: [(Shoal_Api_Service, [Shoal_Api_Network])] = []
                    let networks = try await connection.control.listNetworks(.init(), options: cliCallOptions).networks
                    for reference in services {
                        var get = Shoal_Api_GetServiceRequest()
                        get.serviceID = reference
                        found.append((try await connection.control.getService(get, options: cliCallOptions).service, networks))
                    }
                    return found
                }
                if pretty {
                    print(found.map { ServiceText.pretty($0.0, networks: $0.1) }.joined(separator: "\n\n"))
                } else {
                    print(try JSONArrayText.of(found.map(\.0)))
                }
            }
        }
    }

    struct Scale: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Scale replicated services: SERVICE=REPLICAS….")
        @OptionGroup var daemon: DaemonAddress
        @Flag(name: .shortAndLong, help: "Return at once instead of waiting for the tasks.")
        var detach = false
        @Argument(help: "SERVICE=REPLICAS pairs.")
        var scales: [String]

        func run() async throws {
            try await reportingFailures {
                var wanted: [(String, UInt64)] = []
                for pair in scales {
                    let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    guard parts.count == 2 else { throw CLIFailure("invalid scale \"\(pair)\": give it as SERVICE=REPLICAS") }
                    wanted.append((parts[0], try replicaCount(parts[1])))
                }
                var scaled: [String] = []
                try await daemon.call { connection in
                    for (reference, replicas) in wanted {
                        var get = Shoal_Api_GetServiceRequest()
                        get.serviceID = reference
                        let service = try await connection.control.getService(get, options: cliCallOptions).service
                        guard !service.isGlobal else { throw CLIFailure("\(reference): scale can only be used with replicated mode") }
                        var update = Shoal_Api_UpdateServiceRequest()
                        update.serviceID = service.id
                        update.serviceVersion = service.meta.version
                        update.spec = service.spec
                        update.spec.replicated.replicas = replicas
                        _ = try await connection.control.updateService(update, options: cliCallOptions)
                        print("\(reference) scaled to \(replicas)")
                        scaled.append(service.id)
                    }
                }
                if !detach {
                    for id in scaled { try await ServiceProgress.wait(for: id, daemon: daemon) }
                }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove services.")
        @OptionGroup var daemon: DaemonAddress
        @Argument(help: "Service names, IDs or ID prefixes.")
        var services: [String]

        func run() async throws {
            try await reportingFailures {
                try await daemon.call { connection in
                    for reference in services {
                        var get = Shoal_Api_GetServiceRequest()
                        get.serviceID = reference
                        var request = Shoal_Api_RemoveServiceRequest()
                        request.serviceID = try await connection.control.getService(get, options: cliCallOptions).service.id
                        _ = try await connection.control.removeService(request, options: cliCallOptions)
                        print(reference)
                    }
                }
            }
        }
    }
}

/// A replica count as the CLI reads it: a whole number, not negative.
func replicaCount(_ text: String) throws -> UInt64 {
    guard let count = UInt64(text) else { throw CLIFailure("invalid replicas value \(text): must be a whole number, 0 or more") }
    return count
}
