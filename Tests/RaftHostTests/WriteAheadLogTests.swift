import Foundation
import Raft
import RaftHost
import Testing

/// The write-ahead log: round trips, overwrites, snapshots, segment rotation, and a crash at
/// every byte of the last segment.
@Suite struct WriteAheadLogTests {
    private func scratchDirectory() -> String {
        let path = NSTemporaryDirectory() + "shoal-wal-\(getpid())-\(UUID().uuidString)"
        return path
    }

    private func entry(_ index: LogIndex, term: Term, _ text: String = "") -> Entry {
        Entry(term: term, index: index, data: Array((text.isEmpty ? "e\(index)t\(term)" : text).utf8))
    }

    /// Batches as a host writes them; the second overwrites 4 and 5 (a conflicting leader).
    private var batches: [[PersistentLog.Record]] {
        [
            [.entry(entry(1, term: 1)), .entry(entry(2, term: 1)), .hardState(HardState(term: 1, vote: 1, commit: 1))],
            [.entry(entry(3, term: 1)), .entry(entry(4, term: 1)), .entry(entry(5, term: 1))],
            [.entry(entry(4, term: 2)), .hardState(HardState(term: 2, vote: 3, commit: 3))],
            [.entry(entry(5, term: 2, String(repeating: "x", count: 300))), .hardState(HardState(term: 2, vote: 3, commit: 5))],
        ]
    }

    @Test func recordsSurviveReopeningAndLaterEntriesReplaceEarlierOnes() throws {
        let directory = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var expected = PersistentLog()
        do {
            let wal = try WriteAheadLog(directory: directory)
            for batch in batches {
                try wal.append(batch, snapshotData: nil)
                for record in batch { try expected.apply(record) }
            }
            #expect(wal.log == expected)
        }
        let reopened = try WriteAheadLog(directory: directory)
        #expect(reopened.log == expected)
        #expect(reopened.recovery.entries.map(\.term) == [1, 1, 1, 2, 2])
        #expect(reopened.recovery.hardState == HardState(term: 2, vote: 3, commit: 5))
        #expect(reopened.recovery.discardedTailBytes == 0)
    }

    /// Cut the segment at every byte: what comes back is every batch that was whole
    /// (acknowledged) before the cut, plus at most a proper prefix of the one being written —
    /// never less, and never an entry its own batch had replaced.
    @Test func aCrashAtAnyByteLosesNoAcknowledgedBatchAndResurrectsNothing() throws {
        let directory = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var boundaries: [(size: Int, state: PersistentLog)] = [(0, PersistentLog())]
        var state = PersistentLog()
        do {
            let wal = try WriteAheadLog(directory: directory)
            for batch in batches {
                try wal.append(batch, snapshotData: nil)
                for record in batch { try state.apply(record) }
                let size = try FileManager.default.attributesOfItem(atPath: directory + "/0000000000000001.wal")[.size] as! Int
                boundaries.append((size, state))
            }
        }
        let segment = try Data(contentsOf: URL(fileURLWithPath: directory + "/0000000000000001.wal"))
        let crashed = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: crashed) }
        for cut in 0...segment.count {
            try? FileManager.default.removeItem(atPath: crashed)
            try FileManager.default.createDirectory(atPath: crashed, withIntermediateDirectories: false)
            try segment.prefix(cut).write(to: URL(fileURLWithPath: crashed + "/0000000000000001.wal"))
            // Every batch that ended before the cut is back whole; of the batch being written,
            // at most a prefix of its records (it was never acknowledged).
            let whole = boundaries.lastIndex { $0.size <= cut }!
            var acceptable = [boundaries[whole].state]
            if whole < batches.count {
                var partial = boundaries[whole].state
                for record in batches[whole] {
                    try partial.apply(record)
                    acceptable.append(partial)
                }
            }
            let wal = try WriteAheadLog(directory: crashed)
            #expect(acceptable.dropLast(whole < batches.count ? 1 : 0).contains(wal.log), "cut at byte \(cut): \(wal.log)")
            // The log goes on after the torn tail was cut off, and that survives too.
            try wal.append([.entry(entry(wal.log.lastIndex + 1, term: 9))], snapshotData: nil)
            let again = try WriteAheadLog(directory: crashed)
            #expect(again.log.entries.last?.term == 9, "append after recovery from cut at \(cut)")
        }
    }

    @Test func damageBeforeTheLastRecordIsCorruptionNotATornWrite() throws {
        let directory = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let wal = try WriteAheadLog(directory: directory)
            for batch in batches { try wal.append(batch, snapshotData: nil) }
        }
        let file = URL(fileURLWithPath: directory + "/0000000000000001.wal")
        var bytes = try Data(contentsOf: file)
        bytes[20] ^= 0x40  // Inside the first record's body.
        try bytes.write(to: file)
        #expect(throws: StorageError.self) { try WriteAheadLog(directory: directory) }
    }

    @Test func snapshotsReplaceTheEntriesTheyCoverAndSegmentsRotate() throws {
        let directory = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let membership = Membership(voters: [1, 2, 3])
        do {
            let wal = try WriteAheadLog(directory: directory, segmentLimit: 4_096)
            for index in 1...LogIndex(200) {
                try wal.append([.entry(entry(index, term: 1, String(repeating: "v", count: 40))),
                    .hardState(HardState(term: 1, vote: 1, commit: index))], snapshotData: nil)
                if index % 50 == 0 {
                    let snapshot = Snapshot(
                        metadata: SnapshotMetadata(index: index - 2, term: 1, membership: membership),
                        data: Array("state at \(index - 2)".utf8))
                    try wal.saveSnapshot(snapshot)
                }
            }
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(names.filter { $0.hasSuffix(".snap") } == ["snap-00000000000000c6-0000000000000001.snap"])
        #expect(names.filter { $0.hasSuffix(".wal") }.count < 4, "old segments were not removed: \(names)")
        let reopened = try WriteAheadLog(directory: directory, segmentLimit: 4_096)
        #expect(reopened.recovery.snapshot?.metadata.index == 198)
        #expect(reopened.recovery.snapshot?.data == Array("state at 198".utf8))
        #expect(reopened.recovery.snapshot?.metadata.membership == membership)
        #expect(reopened.recovery.entries.map(\.index) == [199, 200])
        #expect(reopened.recovery.hardState.commit == 200)
    }

    /// A snapshot from a leader whose log disagrees with ours drops our entries after it.
    @Test func aConflictingSnapshotDropsTheEntriesAfterIt() throws {
        let directory = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let wal = try WriteAheadLog(directory: directory)
            try wal.append((1...6).map { .entry(entry($0, term: 1)) }, snapshotData: nil)
            let snapshot = SnapshotMetadata(index: 4, term: 2, membership: Membership(voters: [1]))
            try wal.append([.snapshot(snapshot)], snapshotData: [1, 2, 3])
        }
        let reopened = try WriteAheadLog(directory: directory)
        #expect(reopened.recovery.entries.isEmpty)
        #expect(reopened.recovery.snapshot?.data == [1, 2, 3])
    }
}
