import Foundation
import Glibc
import HostNet
import Lab
import Testing
import Wire

let isRoot = getuid() == 0

/// The `shoal` executable built beside this test bundle.
let shoalExecutable: String = {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var directory = bundle.deletingLastPathComponent()
    // Swift Testing may run from inside the .xctest bundle directory.
    if directory.lastPathComponent.hasSuffix(".xctest") { directory = directory.deletingLastPathComponent() }
    return directory.appendingPathComponent("shoal").path
}()

/// Runs a long stretch of blocking waits (a minute of subprocesses) on a thread of its own and
/// returns what it gathered: on two cores Swift's cooperative pool has two threads, and a test
/// holding one for minutes starves the other suites' awaits. Expectations stay with the caller
/// (issues are recorded against the test its task runs).
func onOwnThread<T: Sendable>(_ body: @escaping () throws -> T) async throws -> T {
    let work = UncheckedWork(body: body)
    return try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            do { continuation.resume(returning: try work.body()) } catch { continuation.resume(throwing: error) }
        }
    }
}

/// A closure handed to another thread once, and run there only (what makes the check moot).
private struct UncheckedWork<T>: @unchecked Sendable { let body: () throws -> T }

/// Runs `shoal` with `arguments` (outside any namespace) and returns its result.
func shoal(_ arguments: [String], timeout: Double = 60) throws -> NamespacedProcess.Result {
    try NamespacedProcess.run([shoalExecutable] + arguments, timeoutSeconds: timeout)
}

/// `shoal -H unix://SOCKET arguments…`: the CLI talking to one lab node's daemon.
func shoalAt(_ socket: String, _ arguments: [String], timeout: Double = 30) throws -> NamespacedProcess.Result {
    try shoal(["-H", "unix://\(socket)"] + arguments, timeout: timeout)
}

/// Drives the real binary as an operator would: a lab running overlay daemons, their
/// counters, a capture, a configuration change, teardown.
@Suite(.enabled(if: isRoot, "needs root: creates network namespaces"), .serialized)
struct OverlayCLIRootTests {
    @Test func labOverlayStatsCaptureApplyAndDown() throws {
        #expect(FileManager.default.isExecutableFile(atPath: shoalExecutable), "\(shoalExecutable)")
        Lab.removeStale()
        let name = "cli\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "2", "--overlay", "--name", name])
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        #expect(up.output.contains("overlay on n1: endpoint 10.10.0.2"))
        let lab = try Lab.attach(named: name)
        let endpoint1 = NetworkNamespace(named: "shoal-\(name)-n1-ep")
        let control1 = "\(lab.record.fileDirectory)/n1.sock", control2 = "\(lab.record.fileDirectory)/n2.sock"

        // A capture on n2 runs while n1's endpoint pings n2's.
        let pcap = NSTemporaryDirectory() + "shoal-cli-\(getpid()).pcap"
        defer { unlink(pcap) }
        let capture = try NamespacedProcess([shoalExecutable, "capture", "--network", "demo", "-w", pcap, "--count", "4", "--duration", "10", "--control", control2])
        Thread.sleep(forTimeInterval: 0.3)
        let ping = try NamespacedProcess.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.10.0.3"], in: endpoint1, timeoutSeconds: 10)
        #expect(ping.status == 0, "\(ping.output)")
        let captured = capture.wait(timeoutSeconds: 15)
        #expect(captured.status == 0, "\(captured.output)")
        #expect(captured.output.contains("4 frames of network demo written"))
        let decoded = try NamespacedProcess.run(["tcpdump", "-nn", "-r", pcap]).output
        #expect(decoded.contains("10.10.0.2 > 10.10.0.3: ICMP echo request"), "\(decoded)")

        let stats = try shoal(["overlay", "stats", "--control", control1])
        #expect(stats.status == 0 && stats.output.contains("demo"), "\(stats.output)")
        let metrics = try shoal(["overlay", "stats", "--prometheus", "--control", control1])
        #expect(metrics.output.contains("# TYPE shoal_overlay_tx_datagrams_total counter"))
        #expect(metrics.output.range(of: #"shoal_overlay_tx_datagrams_total\{network="demo",vni="4096"\} [1-9]"#, options: .regularExpression) != nil,
                "\(metrics.output)")

        // Take n2's endpoint away from n1's view: traffic to it is now refused and counted.
        let config = "\(lab.record.fileDirectory)/n1-overlay.json"
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: config))) as! [String: Any]
        json["remote"] = []
        let changed = NSTemporaryDirectory() + "shoal-cli-\(getpid()).json"
        defer { unlink(changed) }
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: changed))
        let apply = try shoal(["overlay", "apply", "--config", changed, "--control", control1])
        #expect(apply.status == 0, "\(apply.output)")
        let refused = try NamespacedProcess.run(["ping", "-c", "1", "-W", "1", "10.10.0.3"], in: endpoint1, timeoutSeconds: 5)
        #expect(refused.status != 0)
        let after = try shoal(["overlay", "stats", "--json", "--control", control1])
        #expect(after.output.contains("arp_unknown_target") || after.output.contains("unknown_destination"), "\(after.output)")

        // Errors are one clear line and a non-zero status.
        let bad = try shoal(["capture", "--network", "nope", "--control", control1])
        #expect(bad.status != 0 && bad.output.contains("no overlay network named 'nope'"), "\(bad.output)")
        let missing = try shoal(["overlay", "stats", "--control", "/nonexistent.sock"])
        #expect(missing.status != 0 && missing.output.contains("cannot reach the daemon"))

        let down = try shoal(["lab", "down", name])
        #expect(down.status == 0, "\(down.output)")
        #expect(!NetworkNamespace.all().contains { $0.contains(name) })
        let stillRunning = lab.record.processes.filter(\.isAlive)
        #expect(stillRunning.isEmpty, "daemons stopped")
    }
}
