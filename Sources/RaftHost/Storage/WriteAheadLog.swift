// The write-ahead log: every record a `Ready` asks to persist, appended to segment files with a
// CRC each and made durable with one fdatasync per batch; snapshots in their own files,
// written atomically. Recovery replays the segments through `PersistentLog`'s rules; a torn
// record at the very end (a crash mid-write) is cut off, damage anywhere else is an error.
//
// Layout of a directory:  0000000000000001.wal, 0000000000000002.wal, …  (segments, in order)
//                         snap-<index>-<term>.snap                       (the live snapshot)
// Record:  length u32 | crc32c(body) u32 | body = type u8 + payload.

import Dispatch
import DurableFiles
import EngineKit
import Glibc
import Metrics
import Raft

/// A member's durable log on disk. Not thread-safe: the host loop owns it.
public final class WriteAheadLog: RaftStorage {
    /// How long each fdatasync of the log takes (`shoal_raft_fsync_seconds`).
    static let fsyncTimer = Metrics.Timer(label: "shoal_raft_fsync_seconds")

    /// What was on disk when the log was opened.
    public struct Recovery: Sendable {
        /// The last hard state written.
        public var hardState: HardState
        /// The live snapshot, with its data.
        public var snapshot: Snapshot?
        /// The entries after the snapshot.
        public var entries: [Entry]
        /// Bytes of a torn final record that were cut off (0 after a clean stop).
        public var discardedTailBytes: Int
    }

    /// The directory holding segments and snapshots.
    public let directory: String
    /// A new segment starts once the current one is this large.
    public let segmentLimit: Int
    /// What is durable now, as the records replay.
    public private(set) var log: PersistentLog
    /// What was found at open.
    public let recovery: Recovery

    private var segmentFD: Int32
    private var segmentSequence: UInt64
    private var segmentSize: Int

    private static let recordHeaderBytes = 8
    private static let maxRecordBytes = CodecLimits.maxPayloadBytes + 1024
    private static let snapshotMagic = Array("SHOALSNP".utf8)

    private enum RecordType: UInt8 {
        case entry = 1
        case hardState = 2
        case snapshot = 3
    }

    /// Opens (creating if needed) the log in `directory` and recovers what it holds.
    public init(directory: String, segmentLimit: Int = 64 << 20) throws(StorageError) {
        self.directory = directory
        self.segmentLimit = segmentLimit
        try Files.makeDirectories(directory)
        let names = try Files.list(directory)
        // Temporary files of an atomic write a crash interrupted (DurableFile names them
        // `<target>.tmp.<pid>.<n>`): never renamed, never referenced.
        for name in names where name.contains(".tmp.") || name.hasSuffix(".tmp") { try Files.remove(path(directory, name)) }
        let segments = names.filter { $0.hasSuffix(".wal") }.compactMap { name -> (UInt64, String)? in
            UInt64(name.dropLast(4), radix: 16).map { ($0, name) }
        }.sorted { $0.0 < $1.0 }

        var log = PersistentLog()
        var discarded = 0
        for (position, (_, name)) in segments.enumerated() {
            let file = path(directory, name)
            let bytes = try Files.readAll(file)
            let (records, validBytes) = try Self.parse(bytes, file: file)
            for record in records { try log.apply(record) }
            if validBytes < bytes.count {
                guard position == segments.count - 1 else {
                    throw .corrupt("\(file): damaged record at byte \(validBytes) in a segment that is not the last")
                }
                try Files.truncate(file, to: validBytes)
                discarded = bytes.count - validBytes
            }
        }

        var snapshot: Snapshot?
        if let metadata = log.snapshot {
            snapshot = try Self.readSnapshot(path(directory, Self.snapshotName(metadata)), expecting: metadata)
        }
        for name in names where name.hasSuffix(".snap") && name != log.snapshot.map(Self.snapshotName) {
            try Files.remove(path(directory, name))  // Written before a crash, never referenced.
        }

        self.log = log
        recovery = Recovery(hardState: log.hardState, snapshot: snapshot, entries: log.entries, discardedTailBytes: discarded)
        if let (sequence, name) = segments.last {
            segmentSequence = sequence
            segmentFD = try Files.open(path(directory, name), flags: O_WRONLY)
            segmentSize = Int(lseek(segmentFD, 0, SEEK_END))
        } else {
            segmentSequence = 1
            let file = path(directory, Self.segmentName(1))
            segmentFD = try Files.open(file, flags: O_WRONLY | O_CREAT | O_EXCL)
            segmentSize = 0
            try Files.syncDirectory(directory)
        }
    }

    deinit { close(segmentFD) }

    /// Makes what `ready` asks durable: the snapshot file first, then one batch of records and
    /// one fdatasync (none when only the commit index moved). Nothing of `ready` may be acted
    /// on before this returns.
    @discardableResult
    public func save(_ ready: Ready) throws(StorageError) -> Bool {
        try append(PersistentLog.records(of: ready), snapshotData: ready.snapshot?.data)
        return true
    }

    /// The log and snapshot found when the log was opened (a driver starts from these once).
    public func recover() throws(StorageError) -> (log: PersistentLog, snapshot: Snapshot?) {
        (log, recovery.snapshot)
    }

    /// Records the host's own snapshot (after ``RaftNode/compact(through:snapshotData:)``), so the
    /// entries it covers need not be replayed, and old segments can go.
    public func saveSnapshot(_ snapshot: Snapshot) throws(StorageError) {
        try append([.snapshot(snapshot.metadata)], snapshotData: snapshot.data)
    }

    /// Appends records; a `.snapshot` record needs `snapshotData`, written to its file first.
    public func append(_ records: [PersistentLog.Record], snapshotData: [UInt8]?) throws(StorageError) {
        guard !records.isEmpty else { return }
        var newSnapshot: SnapshotMetadata?
        for case .snapshot(let metadata) in records { newSnapshot = metadata }
        if let newSnapshot {
            guard let snapshotData else { throw .corrupt("snapshot record without data") }
            try writeSnapshot(Snapshot(metadata: newSnapshot, data: snapshotData))
        }
        var writer = ByteWriter()
        var mustSync = false
        for record in records {
            Self.encode(record, into: &writer)
            switch record {
            case .entry, .snapshot:
                mustSync = true
            case .hardState(let state):
                // A commit index alone needs no fsync: it is relearned from the leader, and
                // recovery clamps it to the log (etcd's MustSync makes the same choice).
                if state.term != log.hardState.term || state.vote != log.hardState.vote { mustSync = true }
            }
        }
        try Files.writeAll(segmentFD, writer.bytes, at: segmentSize, path: currentSegmentPath)
        if mustSync {
            let started = DispatchTime.now().uptimeNanoseconds
            try Files.sync(segmentFD, path: currentSegmentPath)
            WriteAheadLog.fsyncTimer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
        }
        segmentSize += writer.bytes.count
        let oldSnapshot = log.snapshot
        for record in records { try log.apply(record) }
        if let oldSnapshot, oldSnapshot != log.snapshot {
            try Files.remove(path(directory, Self.snapshotName(oldSnapshot)))
        }
        if segmentSize >= segmentLimit { try rotateIfCheap() }
    }

    /// Starts a new segment holding the whole durable state, then drops the old segments — only
    /// when that state is small (a recent snapshot), so rotation never copies a long log.
    private func rotateIfCheap() throws(StorageError) {
        var writer = ByteWriter()
        if let snapshot = log.snapshot { Self.encode(.snapshot(snapshot), into: &writer) }
        for entry in log.entries { Self.encode(.entry(entry), into: &writer) }
        Self.encode(.hardState(log.hardState), into: &writer)
        guard writer.bytes.count < segmentLimit / 2 else { return }
        let next = segmentSequence + 1
        let file = path(directory, Self.segmentName(next))
        try Files.writeAtomically(writer.bytes, to: file)
        let fd = try Files.open(file, flags: O_WRONLY)
        close(segmentFD)
        segmentFD = fd
        segmentSequence = next
        segmentSize = writer.bytes.count
        for name in try Files.list(directory) where name.hasSuffix(".wal") {
            if let sequence = UInt64(name.dropLast(4), radix: 16), sequence < next {
                try Files.remove(path(directory, name))
            }
        }
        try Files.syncDirectory(directory)
    }

    private var currentSegmentPath: String { path(directory, Self.segmentName(segmentSequence)) }

    // MARK: - Encoding

    private static func encode(_ record: PersistentLog.Record, into writer: inout ByteWriter) {
        var body = ByteWriter()
        switch record {
        case .entry(let entry):
            body.byte(RecordType.entry.rawValue)
            body.entry(entry)
        case .hardState(let state):
            body.byte(RecordType.hardState.rawValue)
            body.word64(state.term)
            body.word64(state.vote)
            body.word64(state.commit)
        case .snapshot(let metadata):
            body.byte(RecordType.snapshot.rawValue)
            body.snapshotMetadata(metadata)
        }
        writer.word32(UInt32(body.bytes.count))
        writer.word32(CRC32C.checksum(body.bytes))
        writer.bytes.append(contentsOf: body.bytes)
    }

    /// Decodes one segment's bytes: its records and how many bytes are intact (see `parse`).
    public static func decodeSegment(_ bytes: [UInt8]) throws(StorageError) -> (records: [PersistentLog.Record], validBytes: Int) {
        try parse(bytes, file: "segment")
    }

    /// The records of one segment and how many bytes of it are intact.
    ///
    /// A crash mid-write leaves a prefix of the last batch: a final record cut short, a final
    /// record whose checksum fails, or zeros. Those end the intact part. A damaged record with
    /// more data after it cannot come from a torn write, and neither can a record that checks
    /// out but does not decode: both are corruption, reported rather than silently cut.
    static func parse(_ bytes: [UInt8], file: String) throws(StorageError) -> (records: [PersistentLog.Record], validBytes: Int) {
        var records: [PersistentLog.Record] = []
        var reader = ByteReader(bytes)
        var valid = 0
        func isTornTail(_ end: Int) -> Bool {
            end >= bytes.count || bytes[valid...].allSatisfy { $0 == 0 }
        }
        while reader.remaining > 0 {
            guard reader.remaining >= recordHeaderBytes else { break }
            let length = Int(reader.word32()!)
            let crc = reader.word32()!
            let end = reader.position + length
            guard length >= 1, length <= maxRecordBytes, reader.remaining >= length else {
                if isTornTail(end) { break }
                throw .corrupt("\(file): record at byte \(valid) has length \(length)")
            }
            let body = Array(bytes[reader.position..<end])
            guard CRC32C.checksum(body) == crc else {
                if isTornTail(end) { break }
                throw .corrupt("\(file): checksum mismatch in record at byte \(valid), with records after it")
            }
            var bodyReader = ByteReader(body)
            do throws(RaftDecodingError) {
                records.append(try decodeBody(&bodyReader))
                guard bodyReader.atEnd else { throw .trailingBytes(bodyReader.remaining) }
            } catch {
                throw .corrupt("\(file): record at byte \(valid): \(error)")
            }
            reader = ByteReader(bytes, from: reader.position + length)
            valid = reader.position
        }
        return (records, valid)
    }

    private static func decodeBody(_ reader: inout ByteReader) throws(RaftDecodingError) -> PersistentLog.Record {
        guard let raw = reader.byte(), let type = RecordType(rawValue: raw) else { throw .invalid("record type") }
        switch type {
        case .entry:
            return .entry(try reader.entry())
        case .hardState:
            guard let term = reader.word64(), let vote = reader.word64(), let commit = reader.word64() else {
                throw .truncated("hard state")
            }
            return .hardState(HardState(term: term, vote: vote, commit: commit))
        case .snapshot:
            return .snapshot(try reader.snapshotMetadata())
        }
    }

    // MARK: - Snapshot files

    static func snapshotName(_ metadata: SnapshotMetadata) -> String {
        "snap-\(hex(metadata.index))-\(hex(metadata.term)).snap"
    }

    static func segmentName(_ sequence: UInt64) -> String { "\(hex(sequence)).wal" }

    private func writeSnapshot(_ snapshot: Snapshot) throws(StorageError) {
        var body = ByteWriter(capacity: snapshot.data.count + 64)
        body.snapshotMetadata(snapshot.metadata)
        body.field(snapshot.data)
        var file = ByteWriter(capacity: body.bytes.count + 16)
        file.bytes.append(contentsOf: Self.snapshotMagic)
        file.word32(CRC32C.checksum(body.bytes))
        file.bytes.append(contentsOf: body.bytes)
        try Files.writeAtomically(file.bytes, to: path(directory, Self.snapshotName(snapshot.metadata)))
    }

    private static func readSnapshot(_ file: String, expecting metadata: SnapshotMetadata) throws(StorageError) -> Snapshot {
        let bytes = try Files.readAll(file)
        guard bytes.count >= 12, Array(bytes[0..<8]) == snapshotMagic else { throw .corrupt("\(file): not a snapshot file") }
        var reader = ByteReader(bytes, from: 8)
        let crc = reader.word32()!
        let body = Array(bytes[12...])
        guard CRC32C.checksum(body) == crc else { throw .corrupt("\(file): checksum mismatch") }
        var bodyReader = ByteReader(body)
        do throws(RaftDecodingError) {
            let stored = try bodyReader.snapshotMetadata()
            guard let data = bodyReader.field(), bodyReader.atEnd else { throw .truncated("snapshot data") }
            guard stored == metadata else { throw .invalid("snapshot metadata differs from the log's") }
            return Snapshot(metadata: stored, data: data)
        } catch {
            throw .corrupt("\(file): \(error)")
        }
    }
}

private func path(_ directory: String, _ name: String) -> String { directory + "/" + name }

private func hex(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}

/// The durable file operations with their errors as the log's ``StorageError``, so that a
/// failure to persist reads the same whichever call it came from.
private enum Files {
    static func convert<T>(_ body: () throws(DurableFileError) -> T) throws(StorageError) -> T {
        do throws(DurableFileError) { return try body() } catch {
            throw .system(operation: error.operation, path: error.object, errno: error.errno)
        }
    }
    static func open(_ path: String, flags: Int32) throws(StorageError) -> Int32 {
        try convert { () throws(DurableFileError) in try DurableFile.open(path, flags: flags) }
    }
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(StorageError) {
        try convert { () throws(DurableFileError) in try DurableFile.writeAll(fd, bytes, at: offset, path: path) }
    }
    static func readAll(_ path: String) throws(StorageError) -> [UInt8] {
        try convert { () throws(DurableFileError) in try DurableFile.readAll(path) }
    }
    static func sync(_ fd: Int32, path: String) throws(StorageError) {
        try convert { () throws(DurableFileError) in try DurableFile.sync(fd, path: path) }
    }
    static func syncDirectory(_ path: String) throws(StorageError) {
        try convert { () throws(DurableFileError) in try DurableFile.syncDirectory(path) }
    }
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws(StorageError) {
        try convert { () throws(DurableFileError) in try DurableFile.writeAtomically(bytes, to: path) }
    }
    static func makeDirectories(_ path: String) throws(StorageError) {
        try convert { () throws(DurableFileError) in try DurableFile.makeDirectories(path) }
    }
    static func list(_ directory: String) throws(StorageError) -> [String] {
        try convert { () throws(DurableFileError) in try DurableFile.list(directory) }
    }
    static func remove(_ path: String) throws(StorageError) {
        try convert { () throws(DurableFileError) in try DurableFile.remove(path) }
    }
    static func truncate(_ path: String, to size: Int) throws(StorageError) {
        try convert { () throws(DurableFileError) in try DurableFile.truncate(path, to: size) }
    }
}
