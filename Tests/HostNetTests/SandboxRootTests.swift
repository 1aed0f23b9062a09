import Foundation
import Glibc
import HostNet
import Testing

/// The task sandbox with real processes: its own hostname, /etc files and network namespace,
/// its output in files, limits through cgroups, and nothing left once removed.
@Suite(.enabled(if: isRoot, needsRoot), .serialized)
struct SandboxRootTests {
    /// A scratch directory for one test, removed afterwards.
    func withDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
        let directory = NSTemporaryDirectory() + "shoal-sandbox-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try await body(directory)
    }

    @Test func aSandboxedProcessSeesItsOwnHostnameFilesAndNetwork() async throws {
        try await withDirectory { directory in
            try await withTestNamespaceAsync("sbx") { namespace in
                try "nameserver 127.0.0.11\noptions ndots:0\n".write(toFile: "\(directory)/resolv.conf", atomically: true, encoding: .utf8)
                try "127.0.0.1\tlocalhost\n10.0.0.7\tweb-1\n".write(toFile: "\(directory)/hosts", atomically: true, encoding: .utf8)
                var spec = SandboxSpec(command: ["sh", "-c", "hostname; cat /etc/resolv.conf /etc/hosts; ip -o link | cut -d: -f2; echo $GREETING >&2"])
                spec.hostname = "web-1"
                spec.networkNamespace = namespace
                spec.environment = ["GREETING=hello"]
                spec.bindMounts = [("\(directory)/resolv.conf", "/etc/resolv.conf"), ("\(directory)/hosts", "/etc/hosts")]
                spec.outputFile = "\(directory)/out.log"
                spec.errorFile = "\(directory)/err.log"
                let process = try SandboxedProcess(spec)
                #expect(await process.waitForExit() == .exited(0))
                let output = try String(contentsOfFile: "\(directory)/out.log", encoding: .utf8)
                let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                #expect(lines.first == "web-1", "\(output)")
                #expect(output.contains("nameserver 127.0.0.11") && output.contains("10.0.0.7\tweb-1"), "\(output)")
                #expect(lines.last == "lo", "only lo in the task's namespace: \(output)")
                #expect(try String(contentsOfFile: "\(directory)/err.log", encoding: .utf8) == "hello\n")
                // The host kept its own.
                var name = [CChar](repeating: 0, count: 256)
                gethostname(&name, 255)
                #expect(String(cString: name) != "web-1")
                #expect(try !String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8).contains("127.0.0.11"))
            }
        }
    }

    @Test func exitStatusesSignalsAndStartFailuresAreTold() async throws {
        let failing = try SandboxedProcess(SandboxSpec(command: ["sh", "-c", "exit 3"]))
        #expect(await failing.waitForExit() == .exited(3))
        let sleeper = try SandboxedProcess(SandboxSpec(command: ["sleep", "30"]))
        #expect(sleeper.identity.isAlive)
        sleeper.signal(SIGTERM)
        #expect(await sleeper.waitForExit() == .signaled(SIGTERM))
        #expect(throws: HostNetError.self) { try SandboxedProcess(SandboxSpec(command: ["/no/such/program"])) }
        do {
            _ = try SandboxedProcess(SandboxSpec(command: ["/no/such/program"]))
        } catch {
            #expect(error.operation == "sandbox: execute" && error.errno == ENOENT, "\(error)")
        }
    }

    @Test func inItsOwnPIDNamespaceTheCommandRunsUnderAnInitThatForwardsSignalsAndReaps() async throws {
        try await withDirectory { directory in
            // The command: its pid, the pids its /proc shows, an orphan left to init, then a
            // wait for SIGTERM (which reaches it only if init forwards it).
            let script = """
                echo pid=$$; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo
                sh -c 'sleep 0.2 &' ; sleep 0.5
                echo zombies=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l)
                trap 'echo terminated; exit 5' TERM
                echo ready; sleep 30 & wait
                """
            var spec = SandboxSpec(command: ["sh", "-c", script])
            spec.newPIDNamespace = true
            spec.outputFile = "\(directory)/out.log"
            spec.errorFile = "\(directory)/err.log"
            let process = try SandboxedProcess(spec)
            var output = ""
            for _ in 0..<100 where !output.contains("ready") {  // Bounded: 100 reads, 50 ms apart.
                usleep(50_000)
                output = (try? String(contentsOfFile: "\(directory)/out.log", encoding: .utf8)) ?? ""
            }
            #expect(output.contains("ready"), "\(output)")
            process.signal(SIGTERM)  // to init, as the agent's stop does
            #expect(await process.waitForExit() == .exited(5))
            output = try String(contentsOfFile: "\(directory)/out.log", encoding: .utf8)
            let lines = output.split(separator: "\n").map(String.init)
            #expect(lines.first == "pid=2", "the command is init's child: \(output)")
            let visible = lines.dropFirst().first?.split(separator: " ").compactMap { Int($0) } ?? []
            #expect(visible.first == 1 && visible.allSatisfy { $0 < 20 }, "its /proc shows the namespace's processes only: \(output)")
            #expect(lines.contains("zombies=0"), "the orphan was reaped: \(output)")
            #expect(lines.last == "terminated", "\(output)")
        }
        // A command that cannot start is reported as without the namespace; an exit status is relayed.
        var missing = SandboxSpec(command: ["/no/such/program"])
        missing.newPIDNamespace = true
        do {
            _ = try SandboxedProcess(missing)
            Issue.record("a missing program started")
        } catch {
            #expect(error.operation == "sandbox: execute" && error.errno == ENOENT, "\(error)")
        }
        var failing = SandboxSpec(command: ["sh", "-c", "exit 3"])
        failing.newPIDNamespace = true
        #expect(await (try SandboxedProcess(failing)).waitForExit() == .exited(3))
    }

    @Test func theMemoryLimitKillsAndSaysSoAndTheGroupsGoWithTheTask() async throws {
        let name = "test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let group = try ControlGroup.create(named: name, memoryLimit: 32 << 20, nanoCPUs: 500_000_000)
        var removed = false
        defer { if !removed { try? group.remove() } }
        var spec = SandboxSpec(command: ["python3", "-c", "x = bytearray(256 << 20); print(len(x))"])
        spec.controlGroup = group
        let hog = try SandboxedProcess(spec)
        #expect(await hog.waitForExit() == .signaled(SIGKILL))
        #expect(group.memoryLimitKills >= 1)

        // A process left in the groups is killed when they are removed.
        var stray = SandboxSpec(command: ["sleep", "60"])
        stray.controlGroup = group
        let sleeper = try SandboxedProcess(stray)
        #expect(group.processes == [sleeper.identity.pid])
        try group.remove()
        removed = true
        #expect(await sleeper.waitForExit() == .signaled(SIGKILL))
        #expect(group.directories.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
    }
}

/// ``withTestNamespace`` for async bodies.
func withTestNamespaceAsync<T>(_ purpose: String, _ body: (NetworkNamespace) async throws -> T) async throws -> T {
    let namespace = try NetworkNamespace.create(named: uniqueNamespaceName(purpose))
    defer { try? namespace.delete() }
    return try await body(namespace)
}
