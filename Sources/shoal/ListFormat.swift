import ArgumentParser
import Foundation

/// `--format` of every `ls` and `ps`: docker's table, or `json`, one object a line with
/// docker's field names (what scripts parse).
struct ListFormat: ParsableArguments {
    @Option(help: "Output format: table, or json (one object per line, docker's field names).")
    var format = "table"

    func validate() throws {
        guard format == "table" || format == "json" else { throw ValidationError("--format \(format): must be table or json") }
    }

    /// True for one JSON object per line.
    var isJSON: Bool { format == "json" }

    /// Prints `rows` under `header` as docker's table, or each row as a JSON object whose keys
    /// are `fields` (one per column, in the same order).
    func emit(header: [String], fields: [String], rows: [[String]]) {
        precondition(header.count == fields.count, "one field name per column")
        if isJSON {
            for row in rows { print(Self.jsonLine(Dictionary(uniqueKeysWithValues: zip(fields, row.map { $0 as Any })))) }
        } else {
            print(Table.render(header: header, rows: rows))
        }
    }

    /// One JSON object on one line, keys sorted.
    static func jsonLine(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
