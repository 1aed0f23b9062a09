import Raft
import RaftHost

/// What one simulated member has made durable: a ``PersistentLog`` (the same rules the
/// write-ahead log replays with) plus the bytes of its latest snapshot. It outlives the
/// member's driver, so a crash loses exactly what was not written.
public final class SimulatedDisk: RaftStorage {
    /// What the records replay to.
    public private(set) var log = PersistentLog()
    /// The bytes of the snapshot `log` starts after.
    public private(set) var snapshotData: [UInt8] = []
    /// Told of every entry about to be written, with the term of the entry before it (checkers).
    public var observePersisted: ((Entry, Term) -> Void)?
    /// When set, the next save that has records writes only a prefix of them — as many as this
    /// returns for their count — and reports that the member stopped part-way.
    public var tearNextWrite: ((Int) -> Int)?

    /// An empty disk.
    public init() {}

    /// The live snapshot with its data.
    public var snapshot: Snapshot? { log.snapshot.map { Snapshot(metadata: $0, data: snapshotData) } }

    /// Writes one record (bootstrap, and every save).
    public func write(_ record: PersistentLog.Record, snapshotData data: [UInt8]?) {
        if case .entry(let entry) = record { observePersisted?(entry, log.term(at: entry.index - 1) ?? 0) }
        do throws(StorageError) {
            try log.apply(record)
        } catch {
            preconditionFailure("simulated disk: \(error)")
        }
        if case .snapshot = record, let data { snapshotData = data }
    }

    public func recover() -> (log: PersistentLog, snapshot: Snapshot?) { (log, snapshot) }

    public func save(_ ready: Ready) -> Bool {
        let records = PersistentLog.records(of: ready)
        if let tear = tearNextWrite, !records.isEmpty {
            tearNextWrite = nil
            for record in records.prefix(tear(records.count)) { write(record, snapshotData: ready.snapshot?.data) }
            return false
        }
        for record in records { write(record, snapshotData: ready.snapshot?.data) }
        return true
    }

    public func saveSnapshot(_ snapshot: Snapshot) {
        write(.snapshot(snapshot.metadata), snapshotData: snapshot.data)
    }
}
