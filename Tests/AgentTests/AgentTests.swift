import ClusterAPI
import Foundation
import SwiftProtobuf
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

/// The health verdicts, with docker's rules: start period, retries in a row, defaults.
@Suite struct HealthCheckTests {
    func check(_ test: [String], interval: Double? = nil, retries: Int32 = 0, startPeriod: Double? = nil) -> HealthCheck? {
        var config = Shoal_Api_HealthConfig()
        config.test = test
        if let interval { config.interval = .init(timeInterval: interval) }
        if let startPeriod { config.startPeriod = .init(timeInterval: startPeriod) }
        config.retries = retries
        return HealthCheck(config)
    }

    @Test func aSpecWithoutATestOrWithNONEChecksNothing() {
        #expect(check([]) == nil && check(["NONE"]) == nil && check(["CMD"]) == nil)
        let shell = check(["CMD-SHELL", "curl -f http://localhost/"])
        #expect(shell?.command == ["/bin/sh", "-c", "curl -f http://localhost/"])
        #expect(shell?.interval == .seconds(30) && shell?.timeout == .seconds(30) && shell?.retries == 3 && shell?.startPeriod == .zero)
        #expect(check(["CMD", "test", "-e", "/ready"])?.command == ["test", "-e", "/ready"])
    }

    @Test func retriesFailuresInARowMakeATaskUnhealthyAndAPassResetsThem() throws {
        let probe = try #require(check(["CMD", "true"], interval: 1, retries: 2))
        var health = HealthState()
        #expect(health.record(passed: false, elapsed: .seconds(1), of: probe) == .starting)
        #expect(health.record(passed: true, elapsed: .seconds(2), of: probe) == .healthy)
        #expect(health.record(passed: false, elapsed: .seconds(3), of: probe) == .healthy)
        #expect(health.record(passed: true, elapsed: .seconds(4), of: probe) == .healthy)
        #expect(health.record(passed: false, elapsed: .seconds(5), of: probe) == .healthy)
        #expect(health.record(passed: false, elapsed: .seconds(6), of: probe) == .unhealthy)
    }

    @Test func failuresInTheStartPeriodDoNotCountAndAPassThereMakesItHealthy() throws {
        let probe = try #require(check(["CMD", "true"], interval: 1, retries: 1, startPeriod: 5))
        var slow = HealthState()
        for second in 1...4 { #expect(slow.record(passed: false, elapsed: .seconds(second), of: probe) == .starting) }
        #expect(slow.record(passed: false, elapsed: .seconds(5), of: probe) == .unhealthy)
        var early = HealthState()
        #expect(early.record(passed: true, elapsed: .seconds(1), of: probe) == .healthy)
        // Once healthy, the start period no longer shields it.
        #expect(early.record(passed: false, elapsed: .seconds(2), of: probe) == .unhealthy)
    }
}
