import ArgumentParser
import ClusterAPI
import Foundation
import Glibc
import NIOCore
import NIOPosix

/// `shoal api-bench`: object writes through the cluster API (bench/cluster.sh). Each of N
/// closed-loop clients owns a network and rewrites its labels, sending the version it read
/// last (optimistic concurrency, as every writer of the store does): one Raft entry per write,
/// committed before the answer. With `--failover`, one client writes through a surviving
/// manager while the leader's daemon is killed, and the time from the kill to the first
/// acknowledged write is printed.
struct APIBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api-bench", abstract: "Measure object writes/s through the API, or its failover (bench/cluster.sh).",
        shouldDisplay: false)

    @OptionGroup var daemon: DaemonAddress
    @Option(help: "Concurrent clients, each with one write in flight.") var clients = 1
    @Option(help: "Seconds of load.") var seconds: Double = 15
    @Option(help: "With --failover: the pid of the leader's daemon, killed with SIGKILL after a second of writes.")
    var kill: Int32?
    @Flag(help: "Measure the time from the leader's kill to the first acknowledged write instead.") var failover = false
    @Flag(help: "Linearizable reads of the client's network instead of writes.") var reads = false
    @Flag(help: "Print one JSON line instead of text.") var json = false

    func run() async throws {
        try await reportingFailures {
            let connection = try APIConnection(to: try APITarget(parsing: daemon.target))
            defer { connection.close() }
            if failover {
                guard let victim = kill else { throw CLIFailure("--failover needs --kill PID") }
                try await measureFailover(connection, victim: victim)
            } else {
                try await measureLoad(connection)
            }
        }
    }

    /// The network client `index` rewrites (made on first use), and its current version.
    private func benchNetwork(_ connection: APIConnection, _ index: Int) async throws -> Shoal_Api_Network {
        let name = "api-bench-\(index)"
        var get = Shoal_Api_GetNetworkRequest()
        get.networkID = name
        if let found = try? await connection.control.getNetwork(get, options: callOptions(timeout: .seconds(10))).network { return found }
        var create = Shoal_Api_CreateNetworkRequest()
        create.spec.annotations.name = name
        create.spec.driver = "overlay"
        return try await connection.control.createNetwork(create, options: callOptions(timeout: .seconds(10))).network
    }

    /// One write: the network's labels with `sequence`, at the version last read.
    private func write(_ connection: APIConnection, _ network: Shoal_Api_Network, _ sequence: Int, timeout: Duration) async throws -> Shoal_Api_Network {
        var update = Shoal_Api_UpdateNetworkRequest()
        update.networkID = network.id
        update.networkVersion = network.meta.version
        update.spec = network.spec
        update.spec.annotations.labels = ["sequence": "\(sequence)"]
        return try await connection.control.updateNetwork(update, options: callOptions(timeout: timeout)).network
    }

    private func measureLoad(_ connection: APIConnection) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        let started = ContinuousClock.now
        let results = try await withThrowingTaskGroup(of: ([Duration], Int).self) { group in
            for index in 0..<clients {
                group.addTask {
                    var network = try await benchNetwork(connection, index)
                    var latencies: [Duration] = []
                    var errors = 0
                    var sequence = 0
                    // Bounded by the deadline.
                    while ContinuousClock.now < deadline {
                        sequence += 1
                        let sent = ContinuousClock.now
                        do {
                            if reads {
                                var get = Shoal_Api_GetNetworkRequest()
                                get.networkID = network.id
                                network = try await connection.control.getNetwork(get, options: callOptions(timeout: .seconds(10))).network
                            } else {
                                network = try await write(connection, network, sequence, timeout: .seconds(10))
                            }
                            latencies.append(ContinuousClock.now - sent)
                        } catch {
                            errors += 1
                            network = try await benchNetwork(connection, index)
                        }
                    }
                    return (latencies, errors)
                }
            }
            var all: ([Duration], Int) = ([], 0)
            for try await (latencies, errors) in group {
                all.0 += latencies
                all.1 += errors
            }
            return all
        }
        let elapsed = ContinuousClock.now - started
        let latencies = results.0.sorted()
        guard !latencies.isEmpty else { throw CLIFailure("no write was acknowledged (\(results.1) errors)") }
        func milliseconds(_ p: Double) -> Double {
            let value = latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
            return Double(value.components.attoseconds) / 1e15 + Double(value.components.seconds) * 1e3
        }
        let rate = Double(latencies.count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        if json {
            let kind = reads ? "reads" : "writes"
            print(#"{"clients":\#(clients),"\#(kind)":\#(latencies.count),"errors":\#(results.1),"\#(kind)_per_second":\#(String(format: "%.0f", rate)),"p50_ms":\#(String(format: "%.2f", milliseconds(0.5))),"p99_ms":\#(String(format: "%.2f", milliseconds(0.99)))}"#)
        } else {
            let kind = reads ? "reads" : "writes"
            print("\(clients) clients: \(String(format: "%.0f", rate)) \(kind)/s, p50 \(String(format: "%.2f", milliseconds(0.5))) ms, "
                + "p99 \(String(format: "%.2f", milliseconds(0.99))) ms (\(latencies.count) \(kind), \(results.1) errors)")
        }
    }

    private func measureFailover(_ connection: APIConnection, victim: Int32) async throws {
        var network = try await benchNetwork(connection, 0)
        var sequence = 0
        var killedAt: ContinuousClock.Instant?
        let started = ContinuousClock.now
        var attempts = 0
        // Bounded: at most 60 s; writes one at a time, each waiting at most 2 s.
        while ContinuousClock.now - started < .seconds(60) {
            if killedAt == nil && ContinuousClock.now - started >= .seconds(1) {
                guard Glibc.kill(victim, SIGKILL) == 0 else { throw CLIFailure("cannot kill \(victim): errno \(errno)") }
                killedAt = .now
            }
            sequence += 1
            attempts += 1
            do {
                network = try await write(connection, network, sequence, timeout: .seconds(2))
                if let killedAt {
                    let gap = ContinuousClock.now - killedAt
                    let ms = Double(gap.components.seconds) * 1e3 + Double(gap.components.attoseconds) / 1e15
                    print(json ? #"{"failover_ms":\#(String(format: "%.0f", ms)),"attempts":\#(attempts)}"# : String(format: "first acknowledged write %.0f ms after the kill", ms))
                    return
                }
            } catch {
                if let current = try? await benchNetwork(connection, 0) { network = current }
            }
        }
        throw CLIFailure("no write was acknowledged within 60 s of the kill")
    }
}
