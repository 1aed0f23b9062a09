import ClusterAPI
import ControlPlane
import Raft
import SwiftProtobuf
import Testing

/// The store as a state machine: transactions all or nothing, optimistic concurrency, unique
/// names, Meta stamped from the entry, snapshots that restore the same objects, and the change
/// history watches resume from.
@Suite struct ClusterStoreTests {
    private var nextIndex: LogIndex = 0

    private static func service(_ id: String, name: String, version: UInt64 = 0) -> Shoal_Api_Service {
        var service = Shoal_Api_Service()
        service.id = id
        service.spec.annotations.name = name
        service.meta.version.index = version
        return service
    }

    private static func action(_ kind: Shoal_Api_StoreActionKind, _ target: Shoal_Api_StoreAction.OneOf_Target) -> Shoal_Api_StoreAction {
        var action = Shoal_Api_StoreAction()
        action.kind = kind
        action.target = target
        return action
    }

    private static func entry(_ index: LogIndex, _ actions: [Shoal_Api_StoreAction], at seconds: Int64 = 1_000, request: UInt64 = 1) -> Entry {
        var transaction = Shoal_Api_StoreTransaction()
        transaction.actions = actions
        transaction.proposer = 1
        transaction.requestID = request
        transaction.proposedAt = Google_Protobuf_Timestamp(seconds: seconds, nanos: 0)
        return Entry(term: 1, index: index, kind: .normal, data: try! transaction.serializedBytes())
    }

    @Test func createsStampsMetaFromTheEntryAndRefusesDuplicates() throws {
        var store = ClusterStore()
        let outcome = store.apply(Self.entry(1, [Self.action(.create, .service(Self.service("s1", name: "my-web")))], at: 42))
        guard case .committed(let commit) = outcome else { Issue.record("\(outcome)"); return }
        #expect(commit.version == 1 && commit.events.count == 1)
        let stored = try #require(store.services["s1"])
        #expect(stored.meta.version.index == 1)
        #expect(stored.meta.createdAt.seconds == 42 && stored.meta.updatedAt.seconds == 42)
        // The same ID again, and the same name in another case under another ID.
        let again = store.apply(Self.entry(2, [Self.action(.create, .service(Self.service("s1", name: "other")))]))
        #expect(again == .refused(.exists(.service, id: "s1"), proposer: 1, requestID: 1))
        let clash = store.apply(Self.entry(3, [Self.action(.create, .service(Self.service("s2", name: "MY-WEB")))]))
        #expect(clash == .refused(.nameConflict(.service, name: "MY-WEB", heldBy: "s1"), proposer: 1, requestID: 1))
        #expect(store.services.count == 1 && store.version == 1 && store.appliedIndex == 3)
    }

    @Test func anUpdateMustCarryTheVersionItRead() throws {
        var store = ClusterStore()
        _ = store.apply(Self.entry(1, [Self.action(.create, .service(Self.service("s1", name: "web")))], at: 10))
        let stale = store.apply(Self.entry(2, [Self.action(.update, .service(Self.service("s1", name: "web2", version: 0)))]))
        #expect(stale == .refused(.versionConflict(.service, id: "s1", expected: 0, actual: 1), proposer: 1, requestID: 1))
        let fresh = store.apply(Self.entry(3, [Self.action(.update, .service(Self.service("s1", name: "web2", version: 1)))], at: 20))
        guard case .committed = fresh else { Issue.record("\(fresh)"); return }
        let updated = try #require(store.services["s1"])
        #expect(updated.meta.version.index == 3 && updated.meta.createdAt.seconds == 10 && updated.meta.updatedAt.seconds == 20)
        #expect(store.services.id(named: "web") == nil && store.services.id(named: "WEB2") == "s1")
        // The name freed by the rename is free for another service.
        let reuse = store.apply(Self.entry(4, [Self.action(.create, .service(Self.service("s2", name: "web")))]))
        guard case .committed = reuse else { Issue.record("\(reuse)"); return }
    }

    @Test func aTransactionIsAppliedWholeOrNotAtAll() throws {
        var store = ClusterStore()
        _ = store.apply(Self.entry(1, [Self.action(.create, .service(Self.service("s1", name: "web")))]))
        var network = Shoal_Api_Network()
        network.id = "n1"
        network.spec.annotations.name = "front"
        // Create a network, rename the service, then a stale update: all three must vanish.
        let outcome = store.apply(Self.entry(2, [
            Self.action(.create, .network(network)),
            Self.action(.update, .service(Self.service("s1", name: "renamed", version: 1))),
            Self.action(.update, .service(Self.service("s1", name: "again", version: 1))),
        ]))
        #expect(outcome == .refused(.versionConflict(.service, id: "s1", expected: 1, actual: 2), proposer: 1, requestID: 1))
        #expect(store.networks.count == 0)
        #expect(store.services["s1"]?.spec.annotations.name == "web" && store.services["s1"]?.meta.version.index == 1)
        #expect(store.services.id(named: "web") == "s1" && store.services.id(named: "renamed") == nil)
        #expect(store.version == 1)
    }

    @Test func removalAndGarbageAreHandled() throws {
        var store = ClusterStore()
        _ = store.apply(Self.entry(1, [Self.action(.create, .service(Self.service("s1", name: "web")))]))
        let missing = store.apply(Self.entry(2, [Self.action(.remove, .service(Self.service("nope", name: "")))]))
        #expect(missing == .refused(.notFound(.service, id: "nope"), proposer: 1, requestID: 1))
        let garbage = store.apply(Entry(term: 1, index: 3, kind: .normal, data: [0xFF, 0xFF, 0xFF]))
        guard case .refused(.malformed, _, _) = garbage else { Issue.record("\(garbage)"); return }
        #expect(store.apply(Entry(term: 2, index: 4, kind: .normal, data: [])) == .noTransaction)
        let removed = store.apply(Self.entry(5, [Self.action(.remove, .service(Self.service("s1", name: "")))]))
        guard case .committed(let commit) = removed else { Issue.record("\(removed)"); return }
        #expect(commit.events.first?.action == .remove)
        #expect(store.services.count == 0 && store.services.id(named: "web") == nil && store.version == 5)
    }

    @Test func aSnapshotRestoresTheSameObjectsAndBytes() throws {
        var store = ClusterStore()
        for index in 1...20 as ClosedRange<LogIndex> {
            var service = Self.service("s\(index)", name: "svc\(index)")
            service.spec.annotations.labels = ["a": "1", "b": "2", "c": "\(index)"]
            _ = store.apply(Self.entry(index, [Self.action(.create, .service(service))]))
        }
        _ = store.apply(Entry(term: 2, index: 21, kind: .normal, data: []))
        let bytes = store.snapshotData()
        let restored = try #require(ClusterStore(snapshotData: bytes))
        #expect(restored.appliedIndex == 21 && restored.version == 20)
        #expect(restored.services.sorted == store.services.sorted)
        #expect(restored.services.id(named: "svc7") == "s7")
        #expect(restored.snapshotData() == bytes, "deterministic bytes")
        #expect(ClusterStore(snapshotData: Array(bytes.dropLast())) == nil)
        // Watches cannot resume from before the snapshot on the restored store.
        #expect(restored.history.commits(after: 19) == nil)
        #expect(restored.history.commits(after: 20)?.isEmpty == true)
    }

    @Test func theHistoryResumesAfterAnyVersionItStillHolds() throws {
        var history = ChangeHistory(limit: 5)
        for version: UInt64 in [3, 4, 7, 9, 10, 12, 15] {
            history.record(StoreCommit(version: version, events: [], proposer: 1, requestID: version))
        }
        // Five kept: 7 9 10 12 15; everything after 4 is still there, nothing after 3 is.
        #expect(history.floor == 4)
        #expect(history.commits(after: 3) == nil)
        #expect(history.commits(after: 4)?.map(\.version) == [7, 9, 10, 12, 15])
        #expect(history.commits(after: 9)?.map(\.version) == [10, 12, 15])
        #expect(history.commits(after: 11)?.map(\.version) == [12, 15])
        #expect(history.commits(after: 15)?.isEmpty == true)
    }
}
