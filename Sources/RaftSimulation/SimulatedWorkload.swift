// What the simulator replicates. The clients of a simulated run read and write registers by
// key; a workload says how a write becomes a log command of its state machine and how a key is
// read back, so the same faults, checkers and linearizability check run over the key-value
// store of `shoal raft` and over the managers' cluster store alike.

import Raft
import RaftHost

/// A state machine as the simulator's register clients see it.
public protocol SimulatedWorkload {
    /// The replicated state machine.
    associatedtype Machine: ReplicatedStateMachine
    /// The log command that sets `key` to `value`; `operation` is unique in the run.
    static func write(key: String, value: [UInt8], operation: Int) -> [UInt8]
    /// The value `key` holds in `machine`, nil when it was never written.
    static func read(key: String, from machine: Machine) -> [UInt8]?
    /// The versions of the changes `machine` committed after `version`, oldest first, for a
    /// watch; nil when the machine keeps no such history or no longer holds that far back.
    static func changes(after version: UInt64, in machine: Machine) -> [UInt64]?
    /// Whether a committed write took effect (a store refuses some transactions whole).
    static func tookEffect(_ output: Machine.Output) -> Bool
    /// Snapshot chunk size for runs of this machine: small enough that a transfer takes many
    /// messages, large enough that catching up fits in the quiet phase for the snapshots
    /// this machine makes.
    static var snapshotChunkBytes: Int { get }
}

extension SimulatedWorkload {
    /// No watch history by default.
    public static func changes(after version: UInt64, in machine: Machine) -> [UInt64]? { nil }

    /// Every committed write takes effect by default.
    public static func tookEffect(_ output: Machine.Output) -> Bool { true }

    /// 64 bytes: the key-value store's snapshots are a few hundred bytes.
    public static var snapshotChunkBytes: Int { 64 }
}

/// The key-value store of `shoal raft`.
public enum KeyValueWorkload: SimulatedWorkload {
    public static func write(key: String, value: [UInt8], operation: Int) -> [UInt8] {
        KeyValueCommand.put(key: key, value: value).encoded
    }

    public static func read(key: String, from machine: KeyValueStore) -> [UInt8]? { machine.values[key] }
}

/// The standard simulation: the key-value store.
public typealias KeyValueSimulation = Simulation<KeyValueWorkload>
