// The cluster API's decoding paths on arbitrary bytes: a store transaction as a committed log
// entry carries it (applied to a store that already holds objects: a refusal must leave the
// store byte for byte as it was, a commit must advance the version to the entry's index),
// a store snapshot as a leader sends it, and every request message the Control, Dispatcher,
// CA and membership services decode. A crash here is input from the network that breaks a
// manager.
import ClusterAPI
import ControlPlane
import FuzzDriver
import Raft
import SwiftProtobuf

/// A store holding a network and a service, the base every input is applied to.
let baseStore: ClusterStore = {
    var store = ClusterStore()
    var network = Shoal_Api_Network()
    network.id = "n1"
    network.spec.annotations.name = "front"
    var service = Shoal_Api_Service()
    service.id = "s1"
    service.spec.annotations.name = "web"
    var transaction = Shoal_Api_StoreTransaction()
    for target in [Shoal_Api_StoreAction.OneOf_Target.network(network), .service(service)] {
        var action = Shoal_Api_StoreAction()
        action.kind = .create
        action.target = target
        transaction.actions.append(action)
    }
    _ = store.apply(Entry(term: 1, index: 1, kind: .normal, data: try! transaction.serializedBytes()))
    return store
}()

/// Request messages that arrive over gRPC; each must decode or fail cleanly.
let requestTypes: [any SwiftProtobuf.Message.Type] = [
    Shoal_Api_CreateServiceRequest.self, Shoal_Api_UpdateServiceRequest.self, Shoal_Api_CreateNetworkRequest.self,
    Shoal_Api_UpdateNodeRequest.self, Shoal_Api_ListTasksRequest.self, Shoal_Api_UpdateClusterRequest.self,
    Shoal_Api_UpdateTaskStatusRequest.self, Shoal_Api_SessionRequest.self, Shoal_Api_IssueNodeCertificateRequest.self,
    Shoal_Api_JoinRequest.self, Shoal_Api_WatchRequest.self,
]

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var store = baseStore
    switch store.apply(Entry(term: 1, index: 2, kind: .normal, data: bytes)) {
    case .committed(let commit):
        precondition(commit.events.isEmpty || store.version == 2, "a commit that did not move the version")
        if let transaction = try? Shoal_Api_StoreTransaction(serializedBytes: bytes) {
            let again = try? Shoal_Api_StoreTransaction(serializedBytes: try transaction.serializedBytes() as [UInt8])
            precondition(again == transaction, "a transaction that does not round-trip")
        }
    case .refused, .noTransaction:
        // Only the applied index moved: the objects and the version are the base's.
        precondition(store.version == baseStore.version, "a refused transaction moved the version")
        precondition(store.services.sorted == baseStore.services.sorted && store.networks.sorted == baseStore.networks.sorted
            && store.tasks.count == 0 && store.nodes.count == 0 && store.clusters.count == 0, "a refused transaction changed the store")
        // The name indexes were rolled back too: the base's names point where they did, and
        // nothing else is taken.
        precondition(store.services.id(named: "web") == "s1" && store.networks.id(named: "front") == "n1", "a name index not rolled back")
        for service in store.services.sorted { precondition(store.services.id(named: service.uniqueName) == service.id) }
        for network in store.networks.sorted { precondition(store.networks.id(named: network.uniqueName) == network.id) }
    }
    if let restored = ClusterStore(snapshotData: bytes) {
        precondition(ClusterStore(snapshotData: restored.snapshotData()) != nil, "a snapshot that does not restore again")
    }
    for type in requestTypes { _ = try? type.init(serializedBytes: bytes) }
    return 0
}

/// SwiftPM's renamed `main` for this target.
@_cdecl("APIFuzz_main")
func apiFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data, size) }
}
