import ArgumentParser
import Daemon
import Foundation
import Logging

/// `shoal daemon`: one per node; starts unjoined until `swarm init` or `swarm join`.
struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon", abstract: "Run this node's daemon (overlay, DNS, gossip, agent; control plane on managers).")

    @Option(help: "This node's name (its HOSTNAME in `node ls`); the host name when omitted.")
    var nodeName: String = ProcessInfo.processInfo.hostName

    @Option(help: "Address other nodes reach this one at (host or host:port, port 2377 by default).")
    var advertiseAddr: String = ""

    @Option(help: "Address the cluster listener (Raft and the API, mutual TLS) binds.")
    var listenAddr: String = "0.0.0.0:2377"

    @Option(help: "Where the node keeps its state, keys and Raft log.")
    var dataDir: String = "/var/lib/shoal"

    @Option(help: "The CLI's Unix socket (mode 0660).")
    var socket: String = "/run/shoal/shoal.sock"

    @Option(help: "Where /metrics is served (Prometheus text).")
    var metricsAddr: String = "127.0.0.1:9323"

    @Option(help: "Connections the VIP balancer tracks at most; new ones beyond are dropped and counted.")
    var conntrackMax: Int = 65536

    @Option(help: "How long an established TCP connection to a VIP may stay idle (the kernel's default: 5 days).")
    var conntrackTcpTimeoutEstablished: String = "120h"

    func validate() throws {
        guard (1...16_000_000).contains(conntrackMax) else { throw ValidationError("--conntrack-max must be 1 to 16000000, not \(conntrackMax)") }
        guard let seconds = DurationText.seconds(conntrackTcpTimeoutEstablished), seconds >= 1, seconds < Double(Int32.max) else {
            throw ValidationError("--conntrack-tcp-timeout-established \(conntrackTcpTimeoutEstablished): not a duration of 1s or more (e.g. 5s, 24h)")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["SHOAL_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
            return handler
        }
        var configuration = DaemonConfiguration(nodeName: nodeName, advertiseAddress: advertiseAddr, dataDirectory: dataDir)
        configuration.listenAddress = listenAddr
        configuration.socketPath = socket
        configuration.metricsAddress = metricsAddr
        configuration.flowTracking.capacity = conntrackMax
        configuration.flowTracking.establishedTimeout = UInt32(DurationText.seconds(conntrackTcpTimeoutEstablished) ?? 432_000)
        let daemon = Daemon(configuration: configuration, metrics: DaemonMetrics.bootstrap())
        let running = Task { try await daemon.run() }
        let signal = await Task.detached { waitForTermination() }.value
        await daemon.shutdown()
        running.cancel()
        _ = try? await running.value
        if signal != 0 { FileHandle.standardError.write(Data("shoal daemon: stopped on signal \(signal)\n".utf8)) }
    }
}
