// Reads a task's output file line by line from where it last stopped, for `service logs`
// (also `-f`, which calls it again as the file grows). A file the agent truncated at its size
// cap is read again from its start.

import Foundation

/// An output file read in whole lines.
final class LogFileReader: @unchecked Sendable {
    // @unchecked: used by one streaming call at a time.
    let path: String
    private var offset: UInt64 = 0
    private var partial = Data()

    init(path: String) { self.path = path }

    /// The complete lines written since the last call (a last line without its newline waits).
    func readLines() -> [Data] {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        if size < offset {
            offset = 0
            partial = Data()
        }
        guard size > offset else { return [] }
        try? handle.seek(toOffset: offset)
        let data = handle.readData(ofLength: Int(size - offset))
        offset += UInt64(data.count)
        partial.append(data)
        var lines: [Data] = []
        while let newline = partial.firstIndex(of: 0x0A) {
            lines.append(partial[partial.startIndex..<newline])
            partial = partial[(newline + 1)...]
        }
        partial = Data(partial)
        return lines
    }
}
