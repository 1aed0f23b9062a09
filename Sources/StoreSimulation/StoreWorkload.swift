// The managers' cluster store under the Raft simulator: the same faults, crashes, torn writes,
// membership changes and linearizability check as the key-value store, with every write a
// StoreTransaction, every read a ReadIndex read of the store, and a watch that follows
// whichever member it reaches across leader changes and must see every commit once, in order.
//
// A register key is the name of a set of tasks; a write creates a task of that name holding
// the value in a label, and a read returns the label of the newest such task (by Meta
// version, which is the log index: the newest is the last write committed). Writes therefore
// exercise creation, versions, stamps, snapshots and history; they never conflict, so every
// write takes effect — a refusal would be a store bug and is reported as one.

import ClusterAPI
import ControlPlane
import Raft
import RaftSimulation
import SwiftProtobuf

/// The cluster store as the simulator's register clients see it.
public enum StoreWorkload: SimulatedWorkload {
    public static func write(key: String, value: [UInt8], operation: Int) -> [UInt8] {
        var task = Shoal_Api_Task()
        task.id = "\(key)/\(operation)"
        task.annotations.name = key
        task.annotations.labels["value"] = String(decoding: value, as: UTF8.self)
        var action = Shoal_Api_StoreAction()
        action.kind = .create
        action.target = .task(task)
        var transaction = Shoal_Api_StoreTransaction()
        transaction.actions = [action]
        transaction.requestID = UInt64(operation)
        transaction.proposedAt = Google_Protobuf_Timestamp(seconds: Int64(operation), nanos: 0)
        return (try? transaction.serializedBytes()) ?? []
    }

    public static func read(key: String, from machine: ClusterStore) -> [UInt8]? {
        var newest: Shoal_Api_Task?
        for task in machine.tasks.byID.values where task.annotations.name == key {
            if task.meta.version.index > newest?.meta.version.index ?? 0 { newest = task }
        }
        return newest.flatMap { $0.annotations.labels["value"] }.map { Array($0.utf8) }
    }

    public static func changes(after version: UInt64, in machine: ClusterStore) -> [UInt64]? {
        machine.history.commits(after: version)?.map(\.version)
    }

    /// 1 KiB: the store keeps every task a run creates (tens of KB by the end), so 64-byte
    /// chunks would turn one catch-up into hundreds of round trips and outlast the quiet phase
    /// (seed 487 did); 1 KiB still takes tens of chunks.
    public static var snapshotChunkBytes: Int { 1_024 }

    public static func tookEffect(_ output: StoreApplyOutcome) -> Bool {
        if case .committed = output { return true }
        return false
    }
}

/// The cluster store under the simulator.
public typealias StoreSimulation = Simulation<StoreWorkload>
