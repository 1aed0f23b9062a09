import Raft

/// What one simulated member has made durable: a ``PersistentLog`` (the same rules the
/// write-ahead log replays with) plus the bytes of its latest snapshot.
struct SimulatedDisk {
    var log = PersistentLog()
    var snapshotData: [UInt8] = []

    var snapshot: Snapshot? { log.snapshot.map { Snapshot(metadata: $0, data: snapshotData) } }

    mutating func write(_ record: PersistentLog.Record, snapshotData data: [UInt8]?) {
        do throws(StorageError) {
            try log.apply(record)
        } catch {
            preconditionFailure("simulated disk: \(error)")
        }
        if case .snapshot = record, let data { snapshotData = data }
    }
}
