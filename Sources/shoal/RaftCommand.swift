import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import Raft
import RaftHost
import RaftSimulation
import StoreSimulation

/// `shoal raft …`: a Raft member, the client commands of its key-value store, the simulator.
struct RaftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft", abstract: "Raft consensus: run members, use their key-value store, simulate.",
        subcommands: [
            RaftServe.self, RaftPut.self, RaftGet.self, RaftStatusCommand.self, RaftAddMember.self, RaftRemoveMember.self,
            RaftTransfer.self, RaftBench.self, RaftSimulate.self, RaftPutMany.self, RaftLoad.self, RaftWaitLeader.self,
        ])
}

/// The endpoints every client command takes.
struct RaftEndpoints: ParsableArguments {
    @Option(help: "Members to contact, comma-separated host:port.") var endpoints: String = "127.0.0.1:2377"

    var list: [String] { endpoints.split(separator: ",").map(String.init) }

    /// Runs one request against the group and returns the answer, or exits with the error.
    func request(_ operation: ClientRequest.Operation) throws -> ClientResponse {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let client = RaftClient(endpoints: list, loop: group.next())
        defer { client.close() }
        do {
            return try client.request(operation, attempts: 20).wait()
        } catch {
            throw ValidationError("no member of \(endpoints) answered: \(error)")
        }
    }
}

struct RaftServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run a Raft member with its key-value store (stops on SIGINT/SIGTERM).")

    @Option(help: "This member's ID (non-zero).") var id: UInt64
    @Option(help: "Address to listen on, host:port.") var listen: String
    @Option(help: "Founding members, comma-separated ID=host:port (this one included).") var peers: String
    @Option(help: "Directory of the write-ahead log and snapshots.") var dataDir: String
    @Flag(help: "Join an existing group (start empty and wait for the leader) instead of founding one.") var join = false
    @Option(help: "Milliseconds per tick.") var tickMs: Int64 = 50
    @Option(help: "Ticks without a leader before an election (randomized up to twice that).") var electionTicks = 6
    @Option(help: "Applied entries between snapshots.") var snapshotInterval: UInt64 = 10_000

    func run() throws {
        var peerMap: [NodeID: String] = [:]
        for item in peers.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let peerID = UInt64(parts[0]), peerID != 0 else {
                throw ValidationError("bad peer '\(item)': expected ID=host:port")
            }
            peerMap[peerID] = String(parts[1])
        }
        guard id != 0 else { throw ValidationError("--id must be non-zero") }
        var configuration = RaftServer.Configuration(id: id, listen: listen, peers: peerMap, dataDirectory: dataDir)
        configuration.join = join
        configuration.tickInterval = .milliseconds(tickMs)
        configuration.electionTicks = electionTicks
        configuration.snapshotInterval = snapshotInterval
        try? FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try RaftServer(configuration: configuration, loop: group.next())
        print("raft member \(id) serving on \(listen) (data in \(dataDir))")
        waitForTermination()
        server.stop()
        try? group.syncShutdownGracefully()
    }
}

private func fail(_ response: ClientResponse) throws -> Never {
    throw ValidationError(response.error ?? "refused")
}

struct RaftPut: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "put", abstract: "Set a key; returns once committed.")
    @OptionGroup var group: RaftEndpoints
    @Argument var key: String
    @Argument var value: String

    func run() throws {
        let response = try group.request(.put(key: key, value: value))
        guard response.ok else { try fail(response) }
        print("OK (index \(response.index ?? 0))")
    }
}

struct RaftGet: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Read a key linearizably.")
    @OptionGroup var group: RaftEndpoints
    @Argument var key: String

    func run() throws {
        let response = try group.request(.get(key: key))
        guard response.ok else { try fail(response) }
        guard let value = response.value else { throw ValidationError("\(key): not found") }
        print(value)
    }
}

struct RaftStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show each endpoint's view of the group.")
    @OptionGroup var group: RaftEndpoints
    @Flag(help: "One JSON object per member.") var json = false

    func run() throws {
        for endpoint in group.list {
            let one = try RaftEndpoints.parse(["--endpoints", endpoint])
            guard let status = (try? one.request(.status))?.status else {
                print("\(endpoint): unreachable")
                continue
            }
            if json {
                let data = try JSONEncoder().encode(status)
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("\(endpoint): member \(status.id) \(status.role) term \(status.term) leader \(status.leader) "
                    + "commit \(status.commit) applied \(status.applied) last \(status.lastIndex) "
                    + "snapshot \(status.snapshotIndex) voters \(status.voters) learners \(status.learners)")
            }
        }
    }
}

struct RaftAddMember: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-member",
        abstract: "Add a member: as a learner first, promoted to voter once it has caught up.")
    @OptionGroup var group: RaftEndpoints
    @Option(help: "The new member's ID.") var id: UInt64
    @Option(help: "The new member's address, host:port (it must be running with --join).") var address: String
    @Option(help: "Seconds to wait for it to catch up.") var timeout: Double = 120

    func run() throws {
        // The address travels in the membership change; a retry after a lost answer finds the
        // learner already added.
        let response = try group.request(.addLearner(id: id, address: address))
        guard response.ok || response.error?.contains("already") == true else { try fail(response) }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let status = try group.request(.status).status, status.role == "leader",
                let matched = status.matched["\(id)"], matched >= status.commit
            {
                let response = try group.request(.promote(id: id))
                guard response.ok else { try fail(response) }
                print("member \(id) caught up at \(matched) and votes now")
                return
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw ValidationError("member \(id) did not catch up within \(timeout) s; it stays a learner")
    }
}

struct RaftRemoveMember: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove-member", abstract: "Remove a member.")
    @OptionGroup var group: RaftEndpoints
    @Option(help: "The member's ID.") var id: UInt64

    func run() throws {
        let response = try group.request(.remove(id: id))
        guard response.ok else { try fail(response) }
        print("member \(id) removed")
    }
}

struct RaftTransfer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "transfer", abstract: "Hand leadership to another voter.")
    @OptionGroup var group: RaftEndpoints
    @Option(help: "The voter to lead.") var to: UInt64

    func run() throws {
        let response = try group.request(.transferLeadership(to: to))
        guard response.ok else { try fail(response) }
        print("leadership transfer to \(to) started")
    }
}

struct RaftSimulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run seeded simulations of a Raft group with faults; exit non-zero on any violation.",
        discussion: "Each seed is one replayable run: `shoal raft simulate --first 71 --count 1 --trace`.")

    @Option(help: "First seed.") var first: UInt64 = 1
    @Option(help: "Number of seeds.") var count: UInt64 = 1_000
    @Flag(help: "Print the notable events of each run.") var trace = false
    @Flag(help: "Break the commit rule on purpose (commit earlier terms by counting), to see the checkers fire.")
    var unsafeCommitEarlierTerms = false
    @Option(help: "What the group replicates: kv (the key-value store) or store (the managers' cluster store).")
    var machine: SimulatedMachine = .kv

    enum SimulatedMachine: String, ExpressibleByArgument { case kv, store }

    func run() throws {
        var failures: [UInt64] = []
        var writes = 0
        var reads = 0
        let clock = ContinuousClock()
        let started = clock.now
        for seed in first..<(first + count) {
            var options = SimulationOptions(seed: seed)
            options.trace = trace
            options.unsafeCommitEarlierTerms = unsafeCommitEarlierTerms
            let report = machine == .kv ? KeyValueSimulation(options: options).run() : StoreSimulation(options: options).run()
            writes += report.completedWrites
            reads += report.completedReads
            if trace { report.trace.forEach { print("  \($0)") } }
            if !report.violations.isEmpty || report.livenessFailure || trace {
                print(report.summary)
                report.violations.forEach { print("  violation: \($0)") }
                if report.livenessFailure { print("  liveness: no write completed after the faults stopped") }
            }
            if !report.violations.isEmpty || report.livenessFailure { failures.append(seed) }
        }
        let elapsed = clock.now - started
        print("\(count) seeds from \(first): \(failures.count) failed, \(writes) writes and \(reads) reads checked, \(elapsed)")
        if !failures.isEmpty {
            print("failing seeds: \(failures.prefix(50).map(String.init).joined(separator: " "))")
            throw ExitCode.failure
        }
    }
}

struct RaftPutMany: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put-many", abstract: "Commit COUNT puts (keys PREFIX0…) in one go: fills a log for tests.")
    @OptionGroup var group: RaftEndpoints
    @Option var prefix = "fill-"
    @Option var count = 100_000
    @Option var valueBytes = 16

    func run() throws {
        let started = Date()
        let response = try group.request(.putMany(prefix: prefix, count: count, valueBytes: valueBytes))
        guard response.ok else { try fail(response) }
        print(String(format: "%d puts committed through index %d in %.1f s", count, response.index ?? 0, Date().timeIntervalSince(started)))
    }
}

/// `shoal raft load`: a steady sequential writer that records every acknowledged put, then
/// reads every one back linearizably — the "0 acknowledged writes lost" check.
struct RaftLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load", abstract: "Write unique keys for a while, then verify every acknowledged one reads back.")
    @OptionGroup var group: RaftEndpoints
    @Option(help: "Seconds of writes.") var seconds: Double = 10
    @Option(help: "Key prefix, unique per run.") var prefix = "load-"

    func run() throws {
        let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? eventLoops.syncShutdownGracefully() }
        let client = RaftClient(endpoints: group.list, loop: eventLoops.next())
        var acknowledged: [String] = []
        var failed = 0
        var longestGap = 0.0
        var lastAck = Date()
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let key = prefix + "\(acknowledged.count + failed)"
            let response = try? client.request(.put(key: key, value: key), attempts: 40).wait()
            if response?.ok == true {
                acknowledged.append(key)
                longestGap = max(longestGap, Date().timeIntervalSince(lastAck))
                lastAck = Date()
            } else {
                failed += 1
            }
        }
        var missing: [String] = []
        for key in acknowledged {
            let response = try? client.request(.get(key: key), attempts: 40).wait()
            if response?.value != key { missing.append(key) }
        }
        print(String(format: "acknowledged %d, failed %d, verified %d, missing %d, longest gap between acks %.0f ms",
            acknowledged.count, failed, acknowledged.count - missing.count, missing.count, longestGap * 1000))
        if !missing.isEmpty {
            print("missing: \(missing.prefix(20).joined(separator: " "))")
            throw ExitCode.failure
        }
    }
}

/// `shoal raft wait-leader`: polls the members until one leads a term above `--above-term`
/// (and is not `--not`), then prints how long that took — the failover time after a kill.
struct RaftWaitLeader: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait-leader", abstract: "Wait for a new leader; print the milliseconds it took.")
    @OptionGroup var group: RaftEndpoints
    @Option var aboveTerm: UInt64 = 0
    @Option(name: .customLong("not")) var notMember: UInt64 = 0
    @Option var timeout: Double = 10

    func run() throws {
        let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? eventLoops.syncShutdownGracefully() }
        let clients = group.list.map { RaftClient(endpoints: [$0], loop: eventLoops.next()) }
        let started = Date()
        while Date().timeIntervalSince(started) < timeout {
            for client in clients {
                guard let status = (try? client.request(.status, attempts: 1).wait())?.status else { continue }
                if status.role == "leader" && status.term > aboveTerm && status.id != notMember {
                    print(String(format: "leader %d term %d after %.0f ms", status.id, status.term, Date().timeIntervalSince(started) * 1000))
                    return
                }
            }
            Thread.sleep(forTimeInterval: 0.005)
        }
        throw ValidationError("no new leader within \(timeout) s")
    }
}
