import ClusterAPI
import Foundation
import Testing

@testable import Agent

/// The agent's parts that need no namespaces: a task's output files kept under their cap, and
/// read back line by line from where the last read stopped.
@Suite struct TaskOutputTests {
    func withDirectory<T>(_ body: (String) throws -> T) throws -> T {
        let directory = NSTemporaryDirectory() + "shoal-agent-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try body(directory)
    }

    @Test func outputPastTheCapIsRotatedAndReadersStartOver() throws {
        try withDirectory { directory in
            var task = Shoal_Api_Task()
            task.id = "t1"
            let runner = TaskRunner(task: task, directory: directory)
            let first = String(repeating: "x", count: 99) + "\n"
            try String(repeating: first, count: 200).write(toFile: runner.outputFile, atomically: false, encoding: .utf8)
            let reader = LogFileReader(path: runner.outputFile)
            #expect(reader.readLines().count == 200)
            runner.capLogs(limit: 10_000)
            #expect(try Data(contentsOf: URL(fileURLWithPath: runner.outputFile)).isEmpty)
            #expect(try Data(contentsOf: URL(fileURLWithPath: runner.outputFile + ".1")).count == 20_000)
            // The process appends on; a reader that had read past the new end starts over.
            let handle = try #require(FileHandle(forWritingAtPath: runner.outputFile))
            handle.seekToEndOfFile()
            handle.write(Data("after\npartial".utf8))
            try handle.close()
            #expect(reader.readLines() == [Data("after".utf8)])
            runner.capLogs(limit: 10_000)  // Under the cap: left alone.
            #expect(try String(contentsOfFile: runner.outputFile, encoding: .utf8) == "after\npartial")
        }
    }
}
