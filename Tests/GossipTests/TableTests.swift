import EngineKit
@testable import Gossip
import GossipSimulation
import Testing

/// The replicated tables on a few members, through the simulator: network scoping, owners
/// failing and returning, and the leave/rejoin race that left stale tombstones in Docker.
@Suite struct TableTests {
    static let second = GossipTime.second
    static func key(_ name: String, table: String = "endpoints", network: String = "ov") -> EntryKey {
        EntryKey(network: network, table: table, key: name)
    }

    /// A small cluster where `joined` members joined "ov", after it formed.
    static func cluster(seed: UInt64, members: Int, joined: Int, loss: Double = 0) -> GossipSimulation {
        var network = SimulatedNetwork()
        network.loss = loss
        let simulation = GossipSimulation(seed: seed, network: network)
        simulation.addMembers(members)
        simulation.run(for: 5 * second)
        for member in simulation.memberNames.prefix(joined) {
            simulation.act(on: member) { engine, now in try? engine.joinNetwork("ov", now: now) }
        }
        simulation.run(for: 2 * second)
        return simulation
    }

    static func visible(_ simulation: GossipSimulation, _ member: MemberName) -> [EntryKey: String] {
        var result: [EntryKey: String] = [:]
        for entry in simulation.engine(member).entries(in: "ov") { result[entry.key] = String(decoding: entry.value, as: UTF8.self) }
        return result
    }

    @Test func entriesReachTheNetworksMembersAndNobodyElse() throws {
        let simulation = Self.cluster(seed: 1, members: 5, joined: 3)
        try simulation.act(on: "m0") { engine, now in try engine.put(Self.key("t1"), value: Array("10.0.0.2".utf8), now: now) }
        simulation.run(for: 2 * Self.second)
        for member in ["m0", "m1", "m2"] { #expect(Self.visible(simulation, member) == [Self.key("t1"): "10.0.0.2"]) }
        for member in ["m3", "m4"] {
            #expect(simulation.engine(member).tables.entries.isEmpty, "\(member) stored an entry of a network it never joined")
        }
        #expect(throws: GossipTableError.notJoined("ov")) {
            try simulation.act(on: "m3") { engine, now in try engine.put(Self.key("t2"), value: [1], now: now) }
        }
        // A late joiner gets the network's entries by pulling them.
        simulation.act(on: "m3") { engine, now in try? engine.joinNetwork("ov", now: now) }
        simulation.run(for: 2 * Self.second)
        #expect(Self.visible(simulation, "m3") == [Self.key("t1"): "10.0.0.2"])
    }

    @Test func aLeaveAndAnImmediateRejoinNeverLeaveAStaleTombstone() throws {
        // Leave, rejoin and rewrite at the same instant; the random delays reorder the three
        // broadcasts differently under each seed.
        for seed in UInt64(1)...20 {
            let simulation = Self.cluster(seed: seed, members: 4, joined: 4)
            simulation.act(on: "m0") { engine, now in try? engine.put(Self.key("t1"), value: Array("a".utf8), now: now) }
            simulation.act(on: "m0") { engine, now in try? engine.put(Self.key("t2"), value: Array("b".utf8), now: now) }
            simulation.run(for: 2 * Self.second)
            simulation.act(on: "m0") { engine, now in
                engine.leaveNetwork("ov", now: now)
                try? engine.joinNetwork("ov", now: now)
                try? engine.put(Self.key("t1"), value: Array("a".utf8), now: now)
            }
            simulation.run(for: 3 * Self.second)
            for member in simulation.memberNames {
                // t1 was written again after the rejoin: live everywhere. t2 was not: gone everywhere.
                #expect(Self.visible(simulation, member) == [Self.key("t1"): "a"], "seed \(seed), \(member)")
            }
        }
    }

    @Test func aDeadOwnersEntriesHideAndReturnFromItsOwnStateOnly() throws {
        let simulation = Self.cluster(seed: 3, members: 5, joined: 5)
        var changes: [MemberName: [EntryChange]] = [:]
        simulation.onEvent = { observer, event, _ in if case .entry(let change) = event { changes[observer, default: []].append(change) } }
        simulation.act(on: "m0") { engine, now in
            try? engine.put(Self.key("kept"), value: Array("1".utf8), now: now)
            try? engine.put(Self.key("lost"), value: Array("2".utf8), now: now)
        }
        simulation.run(for: 2 * Self.second)
        #expect(Self.visible(simulation, "m3").count == 2)
        simulation.kill("m0")
        simulation.run(for: 15 * Self.second)
        for member in simulation.memberNames.dropFirst() {
            #expect(simulation.engine(member).member("m0")?.status == .dead)
            #expect(Self.visible(simulation, member).isEmpty, "\(member) still shows a dead member's entries")
            #expect(changes[member]?.suffix(2).allSatisfy { $0.value == nil } == true, "watchers of \(member) saw no deletes")
        }
        // It comes back having kept only one of its entries on disk.
        simulation.restart("m0", joinThrough: ["m1"], life: 1, entries: [(Self.key("kept"), Array("1".utf8))])
        simulation.run(for: 10 * Self.second)
        for member in simulation.memberNames {
            #expect(simulation.engine(member).member("m0")?.status == .alive)
            #expect(Self.visible(simulation, member) == [Self.key("kept"): "1"], "\(member)")
            #expect(
                !(changes[member] ?? []).contains { $0.key == Self.key("lost") && $0.value != nil && member != "m0" }
                    || changes[member]!.last(where: { $0.key == Self.key("lost") })?.value == nil)
        }
    }

    @Test func aRestartWithoutStateWithdrawsWhatThePreviousLifeWrote() throws {
        let simulation = Self.cluster(seed: 4, members: 4, joined: 4)
        simulation.act(on: "m1") { engine, now in try? engine.put(Self.key("old"), value: [1], now: now) }
        simulation.run(for: 2 * Self.second)
        simulation.kill("m1")
        simulation.run(for: 1 * Self.second)  // back before anyone declared it dead
        simulation.restart("m1", joinThrough: ["m0"], life: 1, entries: [])
        simulation.run(for: 10 * Self.second)
        for member in simulation.memberNames {
            #expect(Self.visible(simulation, member).isEmpty, "\(member) keeps a previous life's entry")
        }
    }

    @Test func aGracefulLeaveWithdrawsEntriesAndIsNotAFailure() throws {
        let simulation = Self.cluster(seed: 5, members: 4, joined: 4)
        simulation.act(on: "m2") { engine, now in try? engine.put(Self.key("x"), value: [1], now: now) }
        simulation.run(for: 2 * Self.second)
        simulation.act(on: "m2") { engine, now in engine.leave(now: now) }
        simulation.run(for: 1 * Self.second)
        simulation.kill("m2")
        simulation.run(for: 5 * Self.second)
        for member in ["m0", "m1", "m3"] {
            #expect(simulation.engine(member).member("m2")?.status == .left)
            #expect(Self.visible(simulation, member).isEmpty)
            #expect(simulation.engine(member).statistics.deathsDeclared == 0)
        }
    }

    @Test func deletesWinOverOlderValuesAndNewerValuesOverDeletes() throws {
        let simulation = Self.cluster(seed: 6, members: 3, joined: 3, loss: 0.2)
        simulation.act(on: "m0") { engine, now in
            try? engine.put(Self.key("k"), value: Array("v1".utf8), now: now)
            try? engine.delete(Self.key("k"), now: now)
        }
        simulation.run(for: 5 * Self.second)
        for member in simulation.memberNames { #expect(Self.visible(simulation, member).isEmpty) }
        simulation.act(on: "m0") { engine, now in try? engine.put(Self.key("k"), value: Array("v2".utf8), now: now) }
        simulation.run(for: 5 * Self.second)
        for member in simulation.memberNames { #expect(Self.visible(simulation, member) == [Self.key("k"): "v2"]) }
        #expect(throws: GossipTableError.noSuchEntry(Self.key("none"))) {
            try simulation.act(on: "m1") { engine, now in try engine.delete(Self.key("none"), now: now) }
        }
    }
}
