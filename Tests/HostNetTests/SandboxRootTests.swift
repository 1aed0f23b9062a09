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
