// How claims about members change what this member believes: alive / suspect / dead / left,
// ordered by incarnation; suspicions with Lifeguard's shrinking timeout; refutation of any
// claim about this member; and what a change in a member's state does to its table entries.

import Foundation

extension GossipEngine {
    /// Applies a claim; true when it was news (and so should be passed on).
    @discardableResult
    func apply(_ record: MemberRecord, now: Int) -> Bool {
        if record.name == name { return applyClaimAboutSelf(record, now: now) }
        switch record.status {
        case .alive:
            return applyAlive(record, now: now)
        case .suspect:
            return applySuspect(record, now: now)
        case .dead, .left:
            guard var member = members[record.name] else { return false }
            let status: MemberStatus = record.status == .left && record.from == record.name ? .left : .dead
            let isNews =
                (member.info.status == .alive || member.info.status == .suspect) && record.incarnation >= member.info.incarnation
                || member.info.status == .dead && status == .left && record.incarnation >= member.info.incarnation
            guard isNews else { return false }
            member.info.incarnation = record.incarnation
            if status == .dead && record.from == name { statistics.deathsDeclared += 1 }
            setStatus(of: &member, to: status, now: now)
            return true
        }
    }

    private func applyAlive(_ record: MemberRecord, now: Int) -> Bool {
        guard var member = members[record.name] else {
            let info = MemberInfo(name: record.name, address: record.address, incarnation: record.incarnation, status: .alive)
            members[record.name] = Member(info: info, statusSince: now)
            liveMembers.insert(record.name)
            // A newcomer joins the current round at a random place (memberlist does the same).
            probeOrder.insert(record.name, at: Int.random(in: probeIndex...probeOrder.count, using: &random))
            events.append(.member(info))
            ownerBecameLive(record.name, returning: false)
            return true
        }
        guard record.incarnation > member.info.incarnation else { return false }
        member.info.incarnation = record.incarnation
        member.info.address = record.address
        setStatus(of: &member, to: .alive, now: now)
        return true
    }

    private func applySuspect(_ record: MemberRecord, now: Int) -> Bool {
        guard var member = members[record.name], record.incarnation >= member.info.incarnation else { return false }
        switch member.info.status {
        case .dead, .left:
            return false
        case .suspect where record.incarnation == member.info.incarnation:
            // A confirmation: news only when it comes from a new claimant.
            guard member.suspicion?.confirm(by: record.from) == true else { return false }
            members[record.name] = member
            earliestSuspicionDeadline = nil
            return true
        case .alive, .suspect:
            member.info.incarnation = record.incarnation
            let live = liveMemberCount
            let minimum = Int(
                configuration.suspicionMinimumMultiplier * max(1, log10(Double(live))) * Double(configuration.probeInterval))
            // Too few members to expect independent confirmations: use the minimum at once.
            let confirmations = live - 2 < configuration.suspicionConfirmations ? 0 : configuration.suspicionConfirmations
            member.suspicion = Suspicion(
                start: now, minimum: minimum, maximum: Int(Double(minimum) * configuration.suspicionMaximumMultiplier),
                expectedConfirmations: confirmations, incarnation: record.incarnation, from: record.from)
            setStatus(of: &member, to: .suspect, now: now)
            earliestSuspicionDeadline = nil
            // Probe a member others suspect with a probability that gives a few probers in all:
            // a real failure collects its confirmations within one probe timeout.
            if record.from != name {
                let chance = min(1, configuration.suspicionProbers / Double(max(1, live - 2)))
                if Double.random(in: 0..<1, using: &random) < chance { startProbe(of: record.name, now: now) }
            }
            return true
        }
    }

    /// Someone says something about us: anything but "alive at our incarnation" is refuted
    /// with a higher incarnation (and an "alive" above ours means a previous life of ours).
    private func applyClaimAboutSelf(_ record: MemberRecord, now: Int) -> Bool {
        guard !isLeaving else { return false }
        switch record.status {
        case .alive:
            guard record.incarnation > incarnation else { return false }
        case .suspect, .dead, .left:
            guard record.incarnation >= incarnation else { return false }
            adjustHealth(by: 1)
        }
        incarnation = record.incarnation + 1
        members[name]?.info.incarnation = incarnation
        statistics.refutations += 1
        broadcastSelf()
        reannounceOwnState()
        return false
    }

    /// Queues "alive" about ourselves.
    func broadcastSelf() {
        broadcast(MemberRecord(name: name, address: configuration.address, incarnation: incarnation, status: .alive, from: name))
    }

    /// Moves `member` to `status`, keeps the indexes and the tables in step, and tells the host.
    func setStatus(of member: inout Member, to status: MemberStatus, now: Int) {
        let name = member.info.name
        let wasLive = member.info.status == .alive || member.info.status == .suspect
        member.info.status = status
        member.statusSince = now
        if status != .suspect {
            member.suspicion = nil
            suspects.remove(name)
        } else {
            suspects.insert(name)
        }
        let isLive = status == .alive || status == .suspect
        if isLive { liveMembers.insert(name) } else { liveMembers.remove(name) }
        if status == .dead { deadMembers.insert(name) } else { deadMembers.remove(name) }
        members[name] = member
        events.append(.member(member.info))
        if wasLive && !isLive {
            ownerFailed(name, left: status == .left)
        } else if !wasLive && isLive {
            ownerBecameLive(name, returning: true)
        }
    }

    /// Declares dead every suspect whose suspicion ran out.
    func expireSuspicions(now: Int) {
        guard earliestSuspicion() <= now else { return }
        for suspect in suspects.sorted() {
            guard let member = members[suspect], let suspicion = member.suspicion, suspicion.deadline <= now else { continue }
            let claim = member.info.claim(.dead, incarnation: suspicion.incarnation, from: name)
            if apply(claim, now: now) { broadcast(claim) }
            precondition(members[suspect]?.suspicion.map { $0.deadline > now } ?? true, "an expired suspicion must end")
        }
    }
}
