// SWIM failure detection with Lifeguard's local health: one probe per protocol period in a
// shuffled round robin, a direct ping, then indirect pings through k helpers who answer with
// a nack when the target stays silent, and (as memberlist does) the same ping once more over
// a stream, which datagram loss cannot stop; a failed probe starts a suspicion.

/// A probe this member started and is waiting on.
struct Probe {
    let target: MemberName
    let start: Int
    let directDeadline: Int
    let indirectDeadline: Int
    var indirectSent = false
    var expectedNacks = 0
    var nacks = 0

    var nextDeadline: Int { indirectSent ? indirectDeadline : directDeadline }
}

/// An indirect probe this member runs for another.
struct Relay {
    let requester: GossipAddress
    let requesterSequence: UInt32
    var nackDeadline: Int?
    let expiry: Int

    var nextDeadline: Int { nackDeadline ?? expiry }
}

extension GossipEngine {
    /// Probes the next member of the round robin; reshuffles at the end of each round.
    func probeNext(now: Int) {
        var checked = 0
        while checked <= probeOrder.count {
            if probeIndex >= probeOrder.count {
                probeOrder = liveMembers.elements.shuffled(using: &random)
                probeIndex = 0
                if probeOrder.isEmpty { return }
            }
            let candidate = probeOrder[probeIndex]
            probeIndex += 1
            checked += 1
            if liveMembers.contains(candidate) {
                startProbe(of: candidate, now: now)
                return
            }
        }
    }

    /// Pings `target` now. A suspected target's ping carries the suspicion (Lifeguard's buddy
    /// system), so a live member learns of it from the very next probe and refutes.
    func startProbe(of target: MemberName, now: Int) {
        guard let member = members[target] else { return }
        if probes.values.contains(where: { $0.target == target }) { return }
        let sequence = makeSequence()
        let scale = health + 1
        probes[sequence] = Probe(
            target: target, start: now, directDeadline: now + configuration.probeTimeout * scale,
            indirectDeadline: now + configuration.probeTimeout * scale * 5 / 2)
        statistics.probes += 1
        send([.ping(sequence: sequence, target: target)], to: member.info.address, destinationName: target)
    }

    func acknowledge(_ sequence: UInt32, now: Int) {
        if probes.removeValue(forKey: sequence) != nil {
            adjustHealth(by: -1)
        } else if let relay = relays.removeValue(forKey: sequence) {
            send([.ack(sequence: relay.requesterSequence)], to: relay.requester, destinationName: nil)
        }
    }

    /// Moves probes past their deadlines: silent after the direct ping → ask helpers; silent
    /// after the helpers too → suspect the target and judge our own health by the nacks.
    func expireProbes(now: Int) {
        for (sequence, probe) in probes.sorted(by: { $0.key < $1.key }) where probe.nextDeadline <= now {
            if !probe.indirectSent {
                askHelpers(sequence: sequence, probe: probe)
                continue
            }
            probes[sequence] = nil
            statistics.failedProbes += 1
            // Lifeguard: helpers that did not even nack suggest the problem is ours.
            adjustHealth(by: probe.expectedNacks > 0 ? probe.expectedNacks - probe.nacks : 1)
            guard let member = members[probe.target], member.info.status == .alive || member.info.status == .suspect else {
                continue
            }
            statistics.suspicionsRaised += 1
            let claim = member.info.claim(.suspect, from: name)
            if apply(claim, now: now) { broadcast(claim) }
        }
    }

    private func askHelpers(sequence: UInt32, probe: Probe) {
        guard let target = members[probe.target] else {
            probes[sequence] = nil
            return
        }
        let helpers = liveMembers.randomElements(configuration.indirectChecks, using: &random) {
            $0 != probe.target && self.members[$0]?.info.status == .alive
        }
        probes[sequence]!.indirectSent = true
        probes[sequence]!.expectedNacks = helpers.count
        // Without this fallback, 5 % datagram loss fails about one probe in 1,500 (direct ping
        // or ack lost, then all three four-hop indirect paths): at 1,000 members that is a false
        // suspicion every two seconds, and their broadcasts would dominate the traffic.
        sendOverStream(.ping(sequence: sequence, target: probe.target), to: target.info.address)
        for helper in helpers {
            guard let address = members[helper]?.info.address else { continue }
            send(
                [.indirectPing(sequence: sequence, target: probe.target, address: target.info.address, wantsNack: true)],
                to: address, destinationName: helper)
        }
    }

    /// Pings `target` on behalf of `requester`; the ack is forwarded, or a nack sent at 80 %
    /// of the probe timeout so the requester knows we are alive and the target is not.
    func relayProbe(
        sequence: UInt32, target: MemberName, address: GossipAddress, requester: GossipAddress, wantsNack: Bool, now: Int
    ) {
        let relaySequence = makeSequence()
        relays[relaySequence] = Relay(
            requester: requester, requesterSequence: sequence,
            nackDeadline: wantsNack ? now + configuration.probeTimeout * 4 / 5 : nil,
            expiry: now + configuration.probeTimeout * 3)
        send([.ping(sequence: relaySequence, target: target)], to: address, destinationName: target)
    }

    func expireRelays(now: Int) {
        for (sequence, relay) in relays.sorted(by: { $0.key < $1.key }) where relay.nextDeadline <= now {
            if relay.nackDeadline != nil {
                relays[sequence]!.nackDeadline = nil
                send([.nack(sequence: relay.requesterSequence)], to: relay.requester, destinationName: nil)
            } else {
                relays[sequence] = nil
            }
        }
    }

    /// Lifeguard's local health multiplier: a member that misses acks and nacks, or must
    /// refute suspicions, slows its own probing and lengthens its timeouts.
    func adjustHealth(by delta: Int) {
        health = min(configuration.maximumHealthScore, max(0, health + delta))
        statistics.healthScore = health
    }
}
