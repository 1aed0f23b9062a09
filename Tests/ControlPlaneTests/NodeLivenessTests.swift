import ClusterAPI
@testable import ControlPlane
import Testing

/// What the leader's liveness pass writes after a leadership change: Unknown for the nodes it
/// has not heard from (once), Ready for one whose session opened meanwhile, never Down before
/// the grace period.
@Suite struct NodeLivenessTests {
    @Test func aNewLeaderWritesSilentNodesUnknownOnceAndConnectedOnesReady() {
        let liveness = NodeLiveness()
        let stored: [String: Shoal_Api_NodeState] = ["a": .ready, "b": .ready, "c": .down]
        #expect(liveness.statusChanges(stored).isEmpty, "a follower writes nothing")

        liveness.leading(true)
        _ = liveness.open(node: "a")
        #expect(liveness.statusChanges(stored) == ["b": .unknown])
        #expect(liveness.expired(stored, period: .seconds(60)).isEmpty, "within the grace period nobody is Down")
        liveness.wroteUnknown()
        #expect(liveness.statusChanges(["a": .ready, "b": .unknown, "c": .down]).isEmpty, "Unknown is written once")

        // b's session opened while it was being written Unknown: once it has settled (its own
        // Ready write raced the Unknown one), the pass writes it Ready.
        _ = liveness.open(node: "b")
        #expect(liveness.statusChanges(["a": .ready, "b": .unknown, "c": .down]).isEmpty, "a young session writes Ready itself")
        #expect(liveness.statusChanges(["a": .ready, "b": .unknown, "c": .down], settled: .zero) == ["b": .ready])

        // Losing leadership forgets everything; leading again marks anew.
        liveness.leading(false)
        liveness.leading(true)
        #expect(liveness.statusChanges(["a": .ready, "b": .ready]) == ["a": .unknown, "b": .unknown])
    }

    @Test func silentNodesGoDownOnlyAfterTheGracePeriod() async throws {
        let liveness = NodeLiveness()
        liveness.leading(true)
        let stored: [String: Shoal_Api_NodeState] = ["a": .unknown, "b": .ready]
        _ = liveness.open(node: "b")
        try await Task.sleep(for: .milliseconds(60))
        #expect(liveness.expired(stored, period: .milliseconds(10)).sorted() == ["a", "b"], "no heartbeat for 3 periods")
        _ = liveness.open(node: "b")
        #expect(liveness.expired(["b": .ready], period: .seconds(60)).isEmpty)
    }
}
