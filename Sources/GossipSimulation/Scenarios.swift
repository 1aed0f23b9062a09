// The measurements issue #6 asks for, as scripted runs of the simulator: how long the
// cluster takes to form, how fast a killed member is declared dead everywhere, whether any
// live member is ever declared dead, how fast a table entry reaches a network, what it all
// costs per member, and whether a partition heals to one identical state.

import EngineKit
import Gossip

/// Figures from one scripted run.
public struct ScenarioReport: Sendable, CustomStringConvertible {
    /// Members in the run.
    public var members = 0
    /// Time from the first join until every member saw every other alive (seconds).
    public var formation: Double?
    /// Detection times, one per (killed member, surviving observer) pair (seconds).
    public var detections: [Double] = []
    /// Observer pairs that never declared a killed member dead.
    public var missedDetections = 0
    /// Live members declared dead by someone (outside partitions).
    public var falseDeaths = 0
    /// Seconds of steady state observed for false deaths.
    public var observedSeconds = 0.0
    /// Per entry: seconds until 99 % and 100 % of the network's live members saw it.
    public var propagation99: [Double] = []
    public var propagation100: [Double] = []
    /// Traffic per member per second in the steady state (sealed envelopes included).
    public var datagramBytesPerSecond = 0.0
    public var payloadBytesPerSecond = 0.0
    public var datagramsPerSecond = 0.0
    public var streamBytesPerSecond = 0.0
    /// Partition runs: seconds from healing until all views were identical, and what differed if never.
    public var convergence: Double?
    public var divergence: [String] = []

    public init() {}

    /// The value at quantile `q` (0…1) of `values`.
    public static func quantile(_ values: [Double], _ q: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * q).rounded()))]
    }

    public var description: String {
        func seconds(_ value: Double?) -> String { value.map { String(format: "%.2f s", $0) } ?? "n/a" }
        var lines = ["members: \(members)"]
        if let formation { lines.append("formation (all see all): \(seconds(formation))") }
        if !detections.isEmpty || missedDetections > 0 {
            lines.append(
                "failure detection over \(detections.count) pairs: median \(seconds(Self.quantile(detections, 0.5))), "
                    + "p99 \(seconds(Self.quantile(detections, 0.99))), max \(seconds(detections.max())), missed \(missedDetections)")
        }
        if observedSeconds > 0 {
            lines.append("false dead declarations in \(Int(observedSeconds)) s: \(falseDeaths)")
        }
        if !propagation99.isEmpty {
            lines.append(
                "entry propagation over \(propagation99.count) entries: 99 % median \(seconds(Self.quantile(propagation99, 0.5))) "
                    + "(max \(seconds(propagation99.max()))), 100 % median \(seconds(Self.quantile(propagation100, 0.5))) "
                    + "(max \(seconds(propagation100.max())))")
        }
        if datagramsPerSecond > 0 {
            lines.append(
                String(
                    format: "traffic per member: %.1f datagrams/s, %.0f B/s of payload (%.0f B/s sealed), plus %.0f B/s of streams",
                    datagramsPerSecond, payloadBytesPerSecond, datagramBytesPerSecond, streamBytesPerSecond))
        }
        if convergence != nil || !divergence.isEmpty {
            lines.append("after healing: \(convergence.map { "identical views in \(seconds($0))" } ?? "DIVERGED")")
            lines += divergence.prefix(10).map { "  \($0)" }
        }
        return lines.joined(separator: "\n")
    }
}

/// Scripted runs.
public enum GossipScenarios {
    /// Forms a cluster of `members` (joining `batch` at a time, every 100 ms, each through three
    /// random running members), then runs `steady` seconds without failure, then kills `kills`
    /// members one after another (`killSpacing` apart) and waits `afterKills`.
    public static func failureDetection(
        seed: UInt64, members: Int, steady: Int, kills: Int, killSpacing: Int = 20 * GossipTime.second,
        afterKills: Int = 40 * GossipTime.second, network: SimulatedNetwork = SimulatedNetwork(),
        trace: ((String) -> Void)? = nil
    ) -> ScenarioReport {
        var report = ScenarioReport()
        report.members = members
        let simulation = GossipSimulation(seed: seed, network: network)
        var killedAt: [MemberName: Int] = [:]
        var detected: [MemberName: [MemberName: Int]] = [:]
        var measuringFalseDeaths = false
        var suspectedCount: [MemberName: Int] = [:]
        simulation.onEvent = { observer, event, time in
            if let trace, case .member(let info) = event, info.status == .suspect, let killed = killedAt[info.name] {
                suspectedCount[info.name, default: 0] += 1
                let count = suspectedCount[info.name]!
                if count == 1 || count == members / 10 || count == members / 2 {
                    trace("\(info.name): suspected by \(count) after \(Double(time - killed) / 1e9) s")
                }
            }
            guard case .member(let info) = event, info.status == .dead else { return }
            if let trace, let killed = killedAt[info.name], detected[info.name] == nil {
                trace("\(info.name): first declared dead by \(observer) after \(Double(time - killed) / 1e9) s")
            }
            if let killed = killedAt[info.name] {
                if detected[info.name]?[observer] == nil { detected[info.name, default: [:]][observer] = time - killed }
            } else if measuringFalseDeaths {
                report.falseDeaths += 1
            }
        }
        report.formation = form(simulation, members: members, seed: seed)
        // The join storm's broadcasts drain within seconds; measure the steady state after it.
        simulation.run(for: 10 * GossipTime.second)
        simulation.resetTraffic()
        measuringFalseDeaths = true
        let steadyStart = simulation.now
        simulation.run(for: steady)
        report.observedSeconds = Double(simulation.now - steadyStart) / Double(GossipTime.second)
        let traffic = simulation.bandwidthPerMember(over: simulation.now - steadyStart)
        report.datagramBytesPerSecond = traffic.datagramBytes
        report.payloadBytesPerSecond = traffic.payloadBytes
        report.datagramsPerSecond = traffic.datagrams
        report.streamBytesPerSecond = traffic.streamBytes
        var random = SplitMix64(seed: seed ^ 0xD1E)
        let victims = Array(simulation.memberNames.shuffled(using: &random).prefix(kills))
        for victim in victims {
            killedAt[victim] = simulation.now
            simulation.kill(victim)
            simulation.run(for: killSpacing)
        }
        simulation.run(for: afterKills)
        for victim in victims {
            for observer in simulation.memberNames where simulation.isUp(observer) {
                if let time = detected[victim]?[observer] {
                    report.detections.append(Double(time) / Double(GossipTime.second))
                } else {
                    report.missedDetections += 1
                }
            }
        }
        return report
    }

    /// Forms a cluster where every member joins network "ov" and `entries` members each put one
    /// entry, 500 ms apart; reports how fast each reached 99 % and 100 % of the network.
    public static func entryPropagation(
        seed: UInt64, members: Int, entries: Int, network: SimulatedNetwork = SimulatedNetwork()
    ) -> ScenarioReport {
        var report = ScenarioReport()
        report.members = members
        let simulation = GossipSimulation(seed: seed, network: network)
        var seen: [EntryKey: Int] = [:]
        var writers: [EntryKey: MemberName] = [:]
        var arrived: [EntryKey: Set<MemberName>] = [:]
        var times: [EntryKey: [Int]] = [:]
        simulation.onEvent = { observer, event, time in
            guard case .entry(let change) = event, change.value != nil, let start = seen[change.key],
                observer != writers[change.key], arrived[change.key, default: []].insert(observer).inserted
            else { return }
            times[change.key, default: []].append(time - start)
        }
        report.formation = form(simulation, members: members, seed: seed)
        for member in simulation.memberNames { simulation.act(on: member) { engine, now in try? engine.joinNetwork("ov", now: now) } }
        simulation.run(for: 10 * GossipTime.second)
        simulation.resetTraffic()
        var random = SplitMix64(seed: seed ^ 0xE27)
        for index in 0..<entries {
            let writer = simulation.memberNames.randomElement(using: &random)!
            let key = EntryKey(network: "ov", table: "endpoints", key: "e\(index)")
            seen[key] = simulation.now
            writers[key] = writer
            simulation.act(on: writer) { engine, now in try? engine.put(key, value: Array("10.0.0.\(index)".utf8), now: now) }
            simulation.run(for: 500 * GossipTime.millisecond)
        }
        simulation.run(for: 30 * GossipTime.second)
        let others = Double(members - 1)
        for (key, _) in seen {
            let arrivals = (times[key] ?? []).sorted()
            let need99 = Int((others * 0.99).rounded(.up))
            if arrivals.count >= need99 { report.propagation99.append(Double(arrivals[need99 - 1]) / Double(GossipTime.second)) }
            if arrivals.count >= Int(others) { report.propagation100.append(Double(arrivals[Int(others) - 1]) / Double(GossipTime.second)) }
        }
        let traffic = simulation.bandwidthPerMember(over: 30 * GossipTime.second + entries * 500 * GossipTime.millisecond)
        report.datagramBytesPerSecond = traffic.datagramBytes
        report.payloadBytesPerSecond = traffic.payloadBytes
        report.datagramsPerSecond = traffic.datagrams
        report.streamBytesPerSecond = traffic.streamBytes
        return report
    }

    /// Forms a cluster on network "ov" with one entry per member, splits it in two for
    /// `partitionFor`, writes, rewrites and deletes entries on both sides meanwhile, heals, and
    /// waits (up to `healWithin`) until every member has the same membership (all alive) and
    /// the same visible entries — exactly the entries their owners hold.
    public static func partitionAndHeal(
        seed: UInt64, members: Int, partitionFor: Int, healWithin: Int, network: SimulatedNetwork = SimulatedNetwork(),
        trace: ((String) -> Void)? = nil
    ) -> ScenarioReport {
        var report = ScenarioReport()
        report.members = members
        let simulation = GossipSimulation(seed: seed, network: network)
        report.formation = form(simulation, members: members, seed: seed)
        let names = simulation.memberNames
        for member in names {
            simulation.act(on: member) { engine, now in
                try? engine.joinNetwork("ov", now: now)
                try? engine.put(EntryKey(network: "ov", table: "endpoints", key: member), value: Array("v1".utf8), now: now)
            }
        }
        simulation.run(for: 20 * GossipTime.second)
        var random = SplitMix64(seed: seed ^ 0x9A7)
        let shuffled = names.shuffled(using: &random)
        simulation.partition([Array(shuffled.prefix(members / 2)), Array(shuffled.dropFirst(members / 2))])
        simulation.run(for: partitionFor / 2)
        for (index, member) in shuffled.prefix(max(2, members / 10)).enumerated() {
            let key = EntryKey(network: "ov", table: "endpoints", key: member)
            simulation.act(on: member) { engine, now in
                if index % 2 == 0 {
                    try? engine.delete(key, now: now)
                } else {
                    try? engine.put(key, value: Array("v2".utf8), now: now)
                }
                try? engine.put(EntryKey(network: "ov", table: "services", key: "s-\(member)"), value: [1], now: now)
            }
        }
        simulation.run(for: partitionFor - partitionFor / 2)
        simulation.heal()
        let healedAt = simulation.now
        while simulation.now - healedAt < healWithin {
            simulation.run(for: GossipTime.second)
            let differences = divergence(simulation)
            trace?("healed +\((simulation.now - healedAt) / GossipTime.second) s: \(differences.count) differences; first: \(differences.first ?? "-")")
            if differences.isEmpty {
                report.convergence = Double(simulation.now - healedAt) / Double(GossipTime.second)
                report.divergence = []
                return report
            }
            report.divergence = differences
        }
        return report
    }

    /// How the members' views differ from the truth: everyone alive, and exactly the entries
    /// their owners hold. Empty when all agree.
    public static func divergence(_ simulation: GossipSimulation) -> [String] {
        let running = simulation.memberNames.filter(simulation.isUp)
        var truth: [EntryKey: [UInt8]] = [:]
        for member in running {
            let engine = simulation.engine(member)
            for (key, value) in engine.ownEntries { truth[key] = value }
        }
        var differences: [String] = []
        for member in running {
            let engine = simulation.engine(member)
            let notAlive = engine.memberList.filter { $0.status != .alive && running.contains($0.name) }
            if !notAlive.isEmpty {
                differences.append("\(member) sees \(notAlive.count) running members not alive, e.g. \(notAlive[0].name) \(notAlive[0].status)")
            }
            if engine.liveMemberCount != running.count {
                differences.append("\(member) sees \(engine.liveMemberCount) live members of \(running.count)")
            }
            for network in engine.joinedNetworks {
                var seen: [EntryKey: [UInt8]] = [:]
                for entry in engine.entries(in: network) { seen[entry.key] = entry.value }
                let expected = truth.filter { $0.key.network == network }
                if seen != expected {
                    let extra = seen.keys.filter { expected[$0] != seen[$0] }.sorted().prefix(2)
                    let missing = expected.keys.filter { seen[$0] == nil }.sorted().prefix(2)
                    differences.append("\(member) entries differ: wrong \(extra.map(\.description)), missing \(missing.map(\.description))")
                }
            }
        }
        return differences
    }

    /// Adds `members` eight at a time every 100 ms, each joining through up to three random
    /// running members, then runs until every member sees every other alive (at most 120 s).
    /// Returns the seconds that took, or nil.
    @discardableResult
    public static func form(_ simulation: GossipSimulation, members: Int, seed: UInt64) -> Double? {
        var random = SplitMix64(seed: seed ^ 0xF0F)
        let start = simulation.now
        simulation.addMembers(1)
        while simulation.memberNames.count < members {
            let batch = min(8, members - simulation.memberNames.count)
            let running = simulation.memberNames
            let seeds = Array(running.shuffled(using: &random).prefix(3))
            simulation.addMembers(batch, joinThrough: seeds)
            simulation.run(for: 100 * GossipTime.millisecond)
        }
        let deadline = simulation.now + 120 * GossipTime.second
        while simulation.now < deadline {
            if simulation.memberNames.allSatisfy({ simulation.engine($0).liveMemberCount == members }) {
                return Double(simulation.now - start) / Double(GossipTime.second)
            }
            simulation.run(for: 100 * GossipTime.millisecond)
        }
        return nil
    }
}
