import Synchronization

/// The current record snapshot. Readers take the whole snapshot under a lock held only for a
/// reference copy, so a query never sees half an update; the agent replaces it as often as it
/// likes (each replace builds an index once, off the query path).
public final class RecordStore: Sendable {
    private let current: Mutex<RecordIndex>

    public init(_ records: DNSRecords = DNSRecords()) throws(DNSRecordsError) {
        try records.validate()
        current = Mutex(RecordIndex(records))
    }

    /// Replaces every record at once.
    public func replace(with records: DNSRecords) throws(DNSRecordsError) {
        try records.validate()
        // Built outside the lock from the snapshot being replaced; a concurrent replace may
        // build from the same one, and the last to swap wins, as with any two updates.
        let index = RecordIndex(records, previous: snapshot)
        current.withLock { $0 = index }
    }

    /// The records being served.
    public var records: DNSRecords { snapshot.records }

    var snapshot: RecordIndex { current.withLock { $0 } }
}
