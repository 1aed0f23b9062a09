import Foundation
import Glibc
import HostNet
import Lab
import Testing

/// Networks and services as a swarm user drives them with the real binary on a 3-node lab:
/// `network create/ls/inspect/rm`, `service create/ls/ps/inspect/scale/rm`, the scheduler's
/// spread and its reasons, and bad input refused in one line with nothing written.
@Suite(.enabled(if: isRoot, "needs root: creates network namespaces"), .serialized)
struct ServiceCLIRootTests {
    /// `service ps` rows (after the header), split on runs of 3+ spaces.
    func taskRows(_ socket: String, _ service: String, _ extra: [String] = []) throws -> [[String]] {
        let result = try shoalAt(socket, ["service", "ps"] + extra + [service], timeout: 10)
        return result.output.split(separator: "\n").dropFirst().map { line in
            line.components(separatedBy: "   ").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }

    /// Polls `condition` up to 100 times, 100 ms apart.
    func eventually(_ condition: () throws -> Bool) rethrows -> Bool {
        for _ in 0..<100 {
            if try condition() { return true }
            usleep(100_000)
        }
        return false
    }

    @Test func networksAndServicesAreCreatedPlacedScaledAndRemoved() throws {
        Lab.removeStale()
        let name = "sv\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "3", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let n1 = "\(lab.record.fileDirectory)/n1.sock"

        // Networks: the swarm's ingress, then ours with the next /24.
        let created = try shoalAt(n1, ["network", "create", "-d", "overlay", "front"])
        #expect(created.status == 0 && created.output.trimmingCharacters(in: .whitespacesAndNewlines).count == 25, "\(created.output)")
        #expect(try eventually { try shoalAt(n1, ["network", "ls"]).output.contains("10.0.0.0/24") })
        let networks = try shoalAt(n1, ["network", "ls"]).output
        #expect(networks.contains("ingress") && networks.contains("10.255.0.0/16") && networks.contains("front"), "\(networks)")
        let inspected = try shoalAt(n1, ["network", "inspect", "front"]).output
        #expect(inspected.contains("\"vni\"") && inspected.contains("4097") && inspected.hasPrefix("["), "\(inspected)")
        let encrypted = try shoalAt(n1, ["network", "create", "--opt", "encrypted", "secret"])
        #expect(encrypted.status == 1 && encrypted.output.contains("not supported yet"), "\(encrypted.output)")

        // A service of 3 replicas spreads over the 3 nodes.
        let web = try shoalAt(n1, ["service", "create", "--name", "my-web", "--replicas", "3", "--network", "front", "--detach", "--",
                                   "python3", "-m", "http.server", "80"])
        #expect(web.status == 0, "\(web.output)")
        #expect(try eventually { try taskRows(n1, "my-web").filter { $0.count >= 6 && $0[5].hasPrefix("Running") }.count == 3 })
        let rows = try taskRows(n1, "my-web")
        #expect(Set(rows.map { $0[3] }) == ["n1", "n2", "n3"], "\(rows)")
        #expect(Set(rows.map { $0[1] }) == ["my-web.1", "my-web.2", "my-web.3"], "\(rows)")
        #expect(rows.allSatisfy { $0[2] == "python3 -m http.server 80" && $0[4] == "Running" }, "\(rows)")
        let listed = try shoalAt(n1, ["service", "ls"]).output
        #expect(listed.contains("my-web") && listed.contains("replicated") && listed.contains("3/3"), "\(listed)")
        let pretty = try shoalAt(n1, ["service", "inspect", "--pretty", "my-web"]).output
        #expect(pretty.contains("Replicas:\t3") && pretty.contains("front:\t10.0.0."), "\(pretty)")
        // --format json: one object a line, docker's field names.
        func objects(_ arguments: [String]) throws -> [[String: Any]] {
            let result = try shoalAt(n1, arguments + ["--format", "json"])
            #expect(result.status == 0, "\(arguments): \(result.output)")
            return try result.output.split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:]
            }
        }
        let services = try objects(["service", "ls"])
        #expect(services.count == 1 && services[0]["Name"] as? String == "my-web" && services[0]["Mode"] as? String == "replicated"
                && services[0]["Replicas"] as? String == "3/3" && services[0]["Image"] as? String == "python3 -m http.server 80"
                && services[0]["ID"] != nil && services[0]["Ports"] != nil, "\(services)")
        let tasks = try objects(["service", "ps", "my-web"])
        #expect(Set(tasks.compactMap { $0["Node"] as? String }) == ["n1", "n2", "n3"]
                && tasks.allSatisfy { $0["DesiredState"] as? String == "Running" && ($0["CurrentState"] as? String ?? "").hasPrefix("Running") }
                && Set(tasks.compactMap { $0["Name"] as? String }) == ["my-web.1", "my-web.2", "my-web.3"], "\(tasks)")
        let networkObjects = try objects(["network", "ls"])
        #expect(Set(networkObjects.compactMap { $0["Name"] as? String }) == ["ingress", "front"]
                && networkObjects.allSatisfy { $0["Driver"] as? String == "overlay" && $0["Scope"] as? String == "swarm" }, "\(networkObjects)")
        let badFormat = try shoalAt(n1, ["service", "ls", "--format", "yaml"])
        #expect(badFormat.status != 0 && badFormat.output.contains("must be table or json"), "\(badFormat.output)")

        // Bad input: one line each, nothing written.
        let before = try shoalAt(n1, ["service", "ls"]).output
        for (arguments, words) in [
            (["--name", "my_web!", "--", "true"], "invalid service name"),
            (["--name", "neg", "--replicas", "-1", "--", "true"], "invalid replicas value -1"),
            (["--name", "lost", "--network", "nowhere", "--", "true"], "network nowhere not found"),
            (["--name", "my-web", "--", "true"], "already exists"),
            (["--name", "odd", "--constraint", "node.role=manager", "--", "true"], "invalid constraint"),
        ] {
            let refused = try shoalAt(n1, ["service", "create", "--detach"] + arguments)
            let lines = refused.output.split(separator: "\n")
            #expect(refused.status == 1 && lines.count == 1 && lines[0].hasPrefix("Error: ") && refused.output.contains(words), "\(arguments): \(refused.output)")
        }
        #expect(try shoalAt(n1, ["service", "ls"]).output == before)
        let inUse = try shoalAt(n1, ["network", "rm", "front"])
        #expect(inUse.status == 1 && inUse.output.contains("in use by service my-web"), "\(inUse.output)")

        // What cannot be placed waits, saying why.
        let nowhere = try shoalAt(n1, ["service", "create", "--name", "nowhere", "--network", "front", "--constraint", "node.labels.zone==mars",
                                       "--detach", "--", "true"])
        #expect(nowhere.status == 0, "\(nowhere.output)")
        #expect(try eventually {
            try shoalAt(n1, ["service", "ps", "--no-trunc", "nowhere"]).output
                .contains("\"no suitable node (scheduling constraints not satisfied on 3 nodes)\"")
        })
        let big = try shoalAt(n1, ["service", "create", "--name", "big", "--reserve-memory", "100T", "--detach", "--", "true"])
        #expect(big.status == 0, "\(big.output)")
        #expect(try eventually {
            try shoalAt(n1, ["service", "ps", "--no-trunc", "big"]).output.contains("insufficient resources on 3 nodes")
        })

        // Scale down: two slots stop and their tasks are deleted; scale up refills slots.
        #expect(try shoalAt(n1, ["service", "scale", "--detach", "my-web=1"]).output.contains("my-web scaled to 1"))
        #expect(try eventually { try taskRows(n1, "my-web").count == 1 })
        #expect(try shoalAt(n1, ["service", "inspect", "--pretty", "my-web"]).output.contains("Replicas:\t1"))
        let rescaled = try shoalAt(n1, ["service", "scale", "my-web=3"], timeout: 60)
        #expect(rescaled.output.contains("verify: Service my-web converged"), "\(rescaled.output)")
        #expect(Set(try taskRows(n1, "my-web").map { $0[1] }) == ["my-web.1", "my-web.2", "my-web.3"])

        // Removal: the tasks stop and go, and then their network can go too.
        #expect(try shoalAt(n1, ["service", "rm", "nowhere", "big", "my-web"]).status == 0)
        #expect(try eventually { try shoalAt(n1, ["network", "rm", "front"]).status == 0 })
        #expect(try !shoalAt(n1, ["service", "ls"]).output.contains("nowhere"))
        let gone = try shoalAt(n1, ["service", "ps", "nowhere"])
        #expect(gone.status == 1 && gone.output.contains("service nowhere not found"), "\(gone.output)")
        let second = try shoalAt(n1, ["network", "create", "back"])
        #expect(second.status == 0)
        // front's subnet was freed with it.
        #expect(try eventually { try shoalAt(n1, ["network", "ls"]).output.contains("10.0.0.0/24") })
        #expect(try shoalAt(n1, ["network", "rm", "back"]).status == 0)
        #expect(try !shoalAt(n1, ["network", "ls"]).output.contains("back"))
    }

    /// The processes whose command line contains `marker`.
    func processes(containing marker: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(marker)
        }
    }

    /// The task's stdout as its node's agent wrote it.
    func taskOutput(_ lab: Lab, node: String, task: String) -> String {
        (try? String(contentsOfFile: "\(lab.record.fileDirectory)/\(node)-data/tasks/\(task)/stdout.log", encoding: .utf8)) ?? ""
    }

    @Test func tasksRunInSandboxesAreRestartedMovedAndLeaveNothingBehind() throws {
        Lab.removeStale()
        let name = "st\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "3", "--dispatcher-heartbeat", "500ms", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let n1 = "\(lab.record.fileDirectory)/n1.sock"
        let marker = "sleep 43\(getpid() % 100)1"

        // Without --detach, create waits until the tasks run and stay up.
        let created = try shoalAt(n1, [
            "service", "create", "--name", "web", "--replicas", "3", "--", "sh", "-c",
            "hostname; cat /etc/resolv.conf; ip -o link | cut -d: -f2; exec \(marker)",
        ], timeout: 60)
        #expect(created.status == 0 && created.output.contains("overall progress: 3 out of 3 tasks")
                && created.output.contains("verify: Service web converged"), "\(created.output)")
        let rows = try taskRows(n1, "web", ["--no-trunc"])
        #expect(rows.count == 3 && Set(rows.map { $0[3] }) == ["n1", "n2", "n3"] && rows.allSatisfy { $0[5].hasPrefix("Running") }, "\(rows)")
        #expect(processes(containing: marker).count == 3)
        #expect(try shoalAt(n1, ["service", "ls"]).output.contains("3/3"))
        // Each sees its own hostname (the task's short ID), 127.0.0.11 as its DNS, only lo.
        for row in rows {
            let output = taskOutput(lab, node: row[3], task: row[0])
            let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(lines.first == String(row[0].prefix(12)) && output.contains("nameserver 127.0.0.11") && lines.last == "lo", "\(output)")
        }

        // --init: the task's own PID namespace; exec joins it; the stop signal reaches the command
        // through init (without it, a PID 1 would ignore SIGTERM until the 30 s grace ran out).
        let initMarker = "sleep 43\(getpid() % 100)2"
        let isolated = try shoalAt(n1, [
            "service", "create", "--name", "isolated", "--init", "--stop-grace-period", "30s", "--", "sh", "-c", "exec \(initMarker)",
        ], timeout: 60)
        #expect(isolated.status == 0, "\(isolated.output)")
        #expect(try shoalAt(n1, ["service", "inspect", "--pretty", "isolated"]).output.contains("Init:\t\ttrue"))
        let seen = try shoalAt(n1, ["exec", "isolated.1", "--", "sh", "-c", "cat /proc/2/cmdline | tr '\\0' ' '; echo; ls /proc | grep -cE '^[0-9]+$'"])
        let seenLines = seen.output.split(separator: "\n").map(String.init)
        #expect(seen.status == 0 && seenLines.first?.hasPrefix(initMarker) == true, "the command is PID 2, under init: \(seen.output)")
        #expect((seenLines.last.flatMap { Int($0) } ?? 99) < 10, "only the task's processes: \(seen.output)")
        let removing = Date()
        #expect(try shoalAt(n1, ["service", "rm", "isolated"]).status == 0)
        #expect(try eventually { processes(containing: initMarker).isEmpty })
        #expect(Date().timeIntervalSince(removing) < 15, "the stop took \(Date().timeIntervalSince(removing)) s")

        // A command that fails is restarted as its policy says, then left failed.
        let failing = try shoalAt(n1, [
            "service", "create", "--name", "flaky", "--detach", "--restart-condition", "on-failure", "--restart-max-attempts", "3",
            "--restart-delay", "100ms", "--", "sh", "-c", "exit 1",
        ])
        #expect(failing.status == 0, "\(failing.output)")
        #expect(try eventually { try taskRows(n1, "flaky").filter { $0.count >= 7 && $0[5].hasPrefix("Failed") }.count == 4 })
        usleep(1_000_000)
        let attempts = try taskRows(n1, "flaky", ["--no-trunc"])
        #expect(attempts.count == 4 && attempts.allSatisfy { $0.contains("\"task: non-zero exit (1)\"") }, "\(attempts)")

        // Over its memory limit: failed, saying so.
        let hog = try shoalAt(n1, [
            "service", "create", "--name", "hog", "--detach", "--limit-memory", "32M", "--restart-condition", "none", "--",
            "python3", "-c", "x = bytearray(256 << 20)",
        ])
        #expect(hog.status == 0, "\(hog.output)")
        #expect(try eventually {
            try shoalAt(n1, ["service", "ps", "--no-trunc", "hog"]).output.contains("task: killed by the memory limit (33554432 bytes)")
        })

        // Drained: n3's task shuts down (the history shows it) and runs elsewhere.
        #expect(try shoalAt(n1, ["node", "update", "--availability", "drain", "n3"]).status == 0)
        #expect(try eventually {
            let rows = try taskRows(n1, "web")
            return rows.filter { $0.count >= 6 && $0[4] == "Running" && $0[5].hasPrefix("Running") && $0[3] != "n3" }.count == 3
                && rows.contains { $0.count >= 6 && $0[3] == "n3" && $0[5].hasPrefix("Shutdown") }
        })

        // n2's daemon killed: Down after three missed heartbeats, its task replaced on n1.
        let n2Tasks = try taskRows(n1, "web", ["--no-trunc"]).filter { $0[3] == "n2" && $0[4] == "Running" }.map { $0[0] }
        kill(lab.record.processes[1].pid, SIGKILL)
        #expect(try eventually {
            try shoalAt(n1, ["node", "ls"]).output.split(separator: "\n").contains { $0.contains("n2") && $0.contains("Down") }
        })
        #expect(try eventually {
            try taskRows(n1, "web").filter { $0.count >= 6 && $0[4] == "Running" && $0[5].hasPrefix("Running") && $0[3] == "n1" }.count == 3
        })
        // Restarted, n2 is Ready and nothing of its old tasks runs or is left.
        let n2 = try NamespacedProcess(
            [
                shoalExecutable, "daemon", "--node-name", "n2", "--advertise-addr", "\(lab.nodes[1].underlayAddress):2377",
                "--listen-addr", "\(lab.nodes[1].underlayAddress):2377", "--data-dir", "\(lab.record.fileDirectory)/n2-data",
                "--socket", "\(lab.record.fileDirectory)/n2.sock", "--metrics-addr", "",
            ], in: lab.nodes[1].namespace, captureOutput: false)
        defer {
            kill(n2.pid, SIGTERM)
            _ = n2.wait(timeoutSeconds: 15)
        }
        #expect(try eventually {
            try shoalAt(n1, ["node", "ls"]).output.split(separator: "\n").contains { $0.contains("n2") && $0.contains("Ready") }
        })
        #expect(try eventually { processes(containing: marker).count == 3 })
        for task in n2Tasks { #expect(!NetworkNamespace(named: "shoal-t-\(task.prefix(12))").exists) }

        // Removed: no process, namespace or cgroup of the service is left.
        let all = try taskRows(n1, "web", ["--no-trunc"]).map { $0[0] } + n2Tasks
        #expect(try shoalAt(n1, ["service", "rm", "web", "flaky", "hog"]).status == 0)
        #expect(try eventually { processes(containing: marker).isEmpty })
        #expect(try eventually {
            all.allSatisfy { task in
                !NetworkNamespace(named: "shoal-t-\(task.prefix(12))").exists
                    && !FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/shoal/task-\(task)")
                    && !FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/shoal/task-\(task)")
            }
        })
    }

    /// `command` inside task `id`'s network namespace (as `shoal exec` will run it).
    func inTask(_ id: String, _ command: [String]) throws -> NamespacedProcess.Result {
        try NamespacedProcess.run(command, in: NetworkNamespace(named: "shoal-t-\(id.prefix(12))"), timeoutSeconds: 10)
    }

    /// The addresses `name` resolves to through the task's DNS (127.0.0.11), sorted.
    func resolve(_ name: String, in task: String) throws -> [String] {
        try inTask(task, ["dig", "+short", "+tries=1", "+time=2", name, "@127.0.0.11"]).output
            .split(separator: "\n").map(String.init).filter { !$0.isEmpty && !$0.hasPrefix(";") }.sorted()
    }

    @Test func theTutorialOnAThreeNodeLab() throws {
        Lab.removeStale()
        let name = "tu\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "3", "--dispatcher-heartbeat", "500ms", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let n1 = "\(lab.record.fileDirectory)/n1.sock"
        #expect(try shoalAt(n1, ["network", "create", "-d", "overlay", "front"]).status == 0)
        let created = try shoalAt(n1, ["service", "create", "--name", "my-web", "--replicas", "3", "--network", "front", "--",
                                       "sh", "-c", "echo serving on $(hostname); exec python3 -m http.server 80"], timeout: 60)
        #expect(created.output.contains("verify: Service my-web converged"), "\(created.output)")
        func running(_ service: String) throws -> [[String]] {
            try taskRows(n1, service, ["--no-trunc", "--filter", "desired-state=running"]).filter { $0.count >= 6 && $0[5].hasPrefix("Running") }
        }
        let web = try running("my-web")
        #expect(web.count == 3 && Set(web.map { $0[3] }) == ["n1", "n2", "n3"], "\(web)")
        let inspect = try shoalAt(n1, ["service", "inspect", "my-web"]).output
        let vip = try #require(inspect.range(of: #"10\.0\.0\.\d+"#, options: .regularExpression).map { String(inspect[$0]) })
        let onN1 = try #require(web.first { $0[3] == "n1" }?[0])

        // Names: the VIP, and every task.
        #expect(try resolve("my-web", in: onN1) == [vip])
        let taskAddresses = try resolve("tasks.my-web", in: onN1)
        #expect(taskAddresses.count == 3 && !taskAddresses.contains(vip), "\(taskAddresses)")
        // As a user does it: `exec` through the manager, into the task's own sandbox (its
        // resolv.conf), on whichever node it runs.
        for slot in 1...3 {
            let lookup = try shoalAt(n1, ["exec", "my-web.\(slot)", "--", "nslookup", "my-web"])
            #expect(lookup.status == 0 && lookup.output.contains("Address: \(vip)"), "\(lookup.output)")
            let tasks = try shoalAt(n1, ["exec", "my-web.\(slot)", "--", "nslookup", "tasks.my-web"])
            #expect(taskAddresses.allSatisfy { tasks.output.contains("Address: \($0)") }, "\(tasks.output)")
        }
        let exitStatus = try shoalAt(n1, ["exec", "my-web.2", "--", "sh", "-c", "echo out; exit 7"])
        #expect(exitStatus.status == 7 && exitStatus.output.contains("out"), "\(exitStatus.output)")
        // Output is relayed as it is written, standard error apart, from this node's task and
        // from the others' (forwarded): "early" arrives while the command still sleeps.
        for slot in 1...3 {
            let script = "echo early; echo oops >&2; sleep 2; echo late; exit 3"
            let process = try NamespacedProcess(
                [shoalExecutable, "-H", "unix://\(n1)", "exec", "my-web.\(slot)", "--", "sh", "-c", script], separateStandardError: true)
            let started = Date()
            var output = "", errors = "", earlyAfter: Double?
            let (status, _) = process.stream(timeoutSeconds: 30) { bytes, isStandardError in
                if isStandardError { errors += String(decoding: bytes, as: UTF8.self) } else { output += String(decoding: bytes, as: UTF8.self) }
                if earlyAfter == nil && output.contains("early") { earlyAfter = Date().timeIntervalSince(started) }
                return true
            }
            let ended = Date().timeIntervalSince(started)
            #expect(status == 3 && output == "early\nlate\n" && errors == "oops\n", "my-web.\(slot): \(status) \(output) \(errors)")
            #expect((earlyAfter ?? ended) < ended - 1.5, "my-web.\(slot): early output after \(earlyAfter ?? -1) s, end after \(ended) s")
        }
        let unknown = try shoalAt(n1, ["exec", "nothing.1", "--", "true"])
        #expect(unknown.status == 1 && unknown.output == "Error: task nothing.1 not found\n", "\(unknown.output)")
        // Over the overlay, from n1 to the task on n3.
        let onN3 = try #require(web.first { $0[3] == "n3" }?[0])
        let n3Address = try #require(try inTask(onN3, ["ip", "-o", "-4", "addr", "show", "eth0"]).output
            .range(of: #"10\.0\.0\.\d+"#, options: .regularExpression).map { String(try inTask(onN3, ["ip", "-o", "-4", "addr", "show", "eth0"]).output[$0]) })
        let curl = try inTask(onN1, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "http://\(n3Address)/"])
        #expect(curl.output == "200", "\(curl.output)")
        // n1's /metrics counts that traffic: VXLAN datagrams sent on the network, DNS answers
        // (sampled each second: bounded, 20 reads 250 ms apart).
        func counted(_ prefix: String, in metrics: String) -> Bool {
            metrics.split(separator: "\n").contains { $0.hasPrefix(prefix) && (Double($0.split(separator: " ").last ?? "") ?? 0) > 0 }
        }
        var metrics = ""
        for _ in 0..<20 {
            metrics = try NamespacedProcess.run(
                ["curl", "-s", "--max-time", "5", "http://127.0.0.1:9323/metrics"], in: lab.nodes[0].namespace, timeoutSeconds: 10).output
            if counted("shoal_overlay_tx_datagrams_total{network=", in: metrics) && counted("shoal_dns_queries_total{result=\"answered\"}", in: metrics) { break }
            usleep(250_000)
        }
        #expect(counted("shoal_overlay_tx_datagrams_total{network=", in: metrics), "\(metrics.split(separator: "\n").filter { $0.contains("overlay") })")
        #expect(counted("shoal_dns_queries_total{result=\"answered\"}", in: metrics), "\(metrics.split(separator: "\n").filter { $0.contains("dns") })")
        #expect(counted("shoal_gossip_members{status=\"alive\"}", in: metrics))

        // Every task's output, prefixed as swarm does.
        let logs = try shoalAt(n1, ["service", "logs", "my-web"])
        for row in web {
            #expect(logs.output.contains("my-web.\(row[1].split(separator: ".").last!).\(row[0].prefix(12))@\(row[3])    | serving on \(row[0].prefix(12))"), "\(logs.output)")
        }

        // dnsrr: the name is the tasks.
        #expect(try shoalAt(n1, ["service", "create", "--name", "rr", "--replicas", "2", "--network", "front", "--endpoint-mode", "dnsrr",
                                 "--", "sleep", "1000"], timeout: 60).status == 0)
        let rrTasks = try running("rr")
        #expect(try resolve("rr", in: onN1).count == 2 && Set(try resolve("rr", in: onN1)) == Set(try resolve("tasks.rr", in: onN1)))

        // Another network sees nothing of front.
        #expect(try shoalAt(n1, ["network", "create", "back"]).status == 0)
        #expect(try shoalAt(n1, ["service", "create", "--name", "other", "--network", "back", "--", "sleep", "1000"], timeout: 60).status == 0)
        let other = try #require(try running("other").first?[0])
        let isolated = try inTask(other, ["dig", "+tries=1", "+time=2", "my-web", "@127.0.0.11"]).output
        #expect(isolated.contains("NXDOMAIN"), "\(isolated)")
        #expect(try inTask(other, ["ping", "-c", "1", "-W", "1", n3Address]).status != 0)
        #expect(try resolve("other", in: onN1).isEmpty)

        // Scale 3 → 10: every task resolves all ten soon after the last one runs.
        #expect(try shoalAt(n1, ["service", "scale", "--detach", "my-web=10"]).status == 0)
        var lastRunning: Date?
        for _ in 0..<300 where lastRunning == nil {  // Bounded: 30 s.
            if try running("my-web").count == 10 { lastRunning = Date() } else { usleep(100_000) }
        }
        try #require(lastRunning != nil)
        let ten = try running("my-web").map { $0[0] }
        var converged: Date?
        for _ in 0..<100 where converged == nil {  // Bounded: 100 rounds.
            if try ten.allSatisfy({ try resolve("tasks.my-web", in: $0).count == 10 }) { converged = Date() }
        }
        let convergence = try #require(converged).timeIntervalSince(lastRunning!)
        print("scale-to-DNS convergence: \(String(format: "%.2f", convergence)) s after the tenth task was seen Running")
        #expect(convergence < 2.0, "scale-to-DNS convergence took \(convergence) s")

        // Scale to 1, then remove: the name is gone everywhere on front.
        _ = try shoalAt(n1, ["service", "scale", "my-web=1"], timeout: 60)
        let watcher = try #require(rrTasks.first?[0])
        #expect(try eventually { try resolve("tasks.my-web", in: watcher).count == 1 })
        #expect(try shoalAt(n1, ["service", "rm", "my-web"]).status == 0)
        #expect(try eventually {
            try inTask(watcher, ["dig", "+tries=1", "+time=2", "my-web", "@127.0.0.11"]).output.contains("NXDOMAIN")
        })
        // Torn down with tasks still running: nothing of any task is left.
        let seen = Set(try ["rr", "other"].flatMap { try taskRows(n1, $0, ["--no-trunc"]).map { $0[0] } } + ten + web.map { $0[0] })
        #expect(seen.count == 13, "\(seen)")
        #expect(try shoal(["lab", "down", name]).status == 0)
        for task in seen {
            #expect(!NetworkNamespace(named: "shoal-t-\(task.prefix(12))").exists, "\(task)")
            #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/shoal/task-\(task)"), "\(task)")
            #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/shoal/task-\(task)"), "\(task)")
        }
        #expect(processes(containing: "http.server 80").isEmpty && processes(containing: "sleep 1000 ").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: lab.record.fileDirectory))
    }

    /// How long the data plane is watched with every manager down (`make e2e` sets 60).
    static let managerlessSeconds = Int(ProcessInfo.processInfo.environment["SHOAL_MANAGERLESS_SECONDS"] ?? "") ?? 15

    @Test func theDataPlaneOutlivesTheManagersAndForgetsDeadNodes() throws {
        Lab.removeStale()
        let name = "dp\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "4", "--dispatcher-heartbeat", "500ms", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let n1 = "\(lab.record.fileDirectory)/n1.sock"
        #expect(try shoalAt(n1, ["network", "create", "front"]).status == 0)
        let created = try shoalAt(n1, ["service", "create", "--name", "web", "--replicas", "3", "--network", "front",
                                       "--constraint", "node.role==worker", "--", "python3", "-m", "http.server", "80"], timeout: 60)
        #expect(created.output.contains("converged"), "\(created.output)")
        let web = try taskRows(n1, "web", ["--no-trunc", "--filter", "desired-state=running"])
        try #require(web.count == 3 && Set(web.map { $0[3] }) == ["n2", "n3", "n4"], "\(web)")
        let address = { (task: String) throws -> String in
            let output = try inTask(task, ["ip", "-o", "-4", "addr", "show", "eth0"]).output
            return try #require(output.range(of: #"10\.0\.0\.\d+"#, options: .regularExpression).map { String(output[$0]) })
        }
        let onN2 = web.first { $0[3] == "n2" }![0], onN3 = web.first { $0[3] == "n3" }![0], onN4 = web.first { $0[3] == "n4" }![0]
        let (n3Address, n4Address) = (try address(onN3), try address(onN4))

        // Gossip is sealed with the managers' key: no node ID crosses the wire in clear.
        let ids = try shoalAt(n1, ["node", "ls", "-q"]).output.split(separator: "\n").map(String.init).filter { $0.count == 25 }
        #expect(ids.count == 4)
        let capture = try NamespacedProcess.run(
            ["timeout", "3", "tcpdump", "-i", "br0", "-A", "-n", "-c", "40", "udp", "port", "7946"], in: lab.hub, timeoutSeconds: 10)
        #expect(capture.output.contains("7946") && ids.allSatisfy { !capture.output.contains($0) }, "\(capture.output.prefix(2000))")

        // The only manager's daemon killed: no store, no dispatcher, no Raft. The workers' tasks
        // still find each other by name and reach each other, on gossip and the overlay alone.
        kill(lab.record.processes[0].pid, SIGKILL)
        let until = Date().addingTimeInterval(Double(Self.managerlessSeconds))
        var rounds = 0
        while Date() < until && rounds < 1_000 {  // Bounded in time and count.
            rounds += 1
            let names = try resolve("tasks.web", in: onN2)
            #expect(names == [try address(onN2), n3Address, n4Address].sorted(), "round \(rounds): \(names)")
            let curl = try inTask(onN2, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", "http://\(n4Address)/"])
            #expect(curl.output == "200", "round \(rounds): \(curl.output)")
            usleep(1_000_000)
        }
        #expect(rounds >= Self.managerlessSeconds / 2)

        // A worker's daemon killed too: gossip declares it dead and its endpoints leave every
        // answer, though its task's process still runs.
        kill(lab.record.processes[2].pid, SIGKILL)
        let killed = Date()
        #expect(try eventually { try resolve("tasks.web", in: onN2) == [try address(onN2), n4Address].sorted() })
        print("a dead node's endpoints left DNS \(String(format: "%.1f", Date().timeIntervalSince(killed))) s after its daemon was killed")
        #expect(try inTask(onN4, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", "http://\(try address(onN2))/"]).output == "200")
    }

    @Test func aLeaderChangeMidScaleLosesAndDoublesNothing() throws {
        Lab.removeStale()
        let name = "lc\(getpid() % 100_000)"
        let up = try shoal(["lab", "up", "--nodes", "3", "--managers", "3", "--dispatcher-heartbeat", "500ms", "--name", name], timeout: 90)
        defer { _ = try? shoal(["lab", "down", name]) }
        try #require(up.status == 0, "\(up.output)")
        let lab = try Lab.attach(named: name)
        let socket = { (node: String) in "\(lab.record.fileDirectory)/\(node).sock" }
        #expect(try shoalAt(socket("n1"), ["service", "create", "--name", "web", "--replicas", "2", "--", "sleep", "1000"], timeout: 60).status == 0)
        let leader = try #require(try shoalAt(socket("n2"), ["node", "ls"]).output.split(separator: "\n")
            .first { $0.contains("Leader") }.flatMap { line in ["n1", "n2", "n3"].first { line.contains(" \($0) ") } })
        let index = Int(leader.dropFirst())! - 1
        let survivor = "n\((index + 1) % 3 + 1)"
        // The scale is committed, then the leader dies before (or while) its loops act on it.
        #expect(try shoalAt(socket(survivor), ["service", "scale", "--detach", "web=12"]).status == 0)
        kill(lab.record.processes[index].pid, SIGKILL)
        // The new leader finishes the job: 12 slots, each with exactly one task meant to run.
        var rows: [[String]] = []
        let done = try eventually {
            rows = try taskRows(socket(survivor), "web", ["--no-trunc", "--filter", "desired-state=running"])
            let names = rows.map { $0[1] }
            return names.count == 12 && Set(names).count == 12
                && rows.filter { $0.count >= 6 && $0[5].hasPrefix("Running") && $0[3] != leader }.count >= 8
        }
        let nodes = try shoalAt(socket(survivor), ["node", "ls"]).output
        // When it fails, the survivors' own account of sessions, leadership and node state.
        let logs = done ? "" : ["n1", "n2", "n3"].filter { $0 != leader }.map { node in
            let text = (try? String(contentsOfFile: "\(lab.record.fileDirectory)/\(node)-daemon.log", encoding: .utf8)) ?? ""
            let lines = text.split(separator: "\n").filter { line in
                ["session", "down", "Down", "leader", "elected", "refused", "error"].contains { line.contains($0) }
            }
            return "--- \(node)\n" + lines.suffix(40).joined(separator: "\n")
        }.joined(separator: "\n")
        #expect(done, "\(rows.map { $0.joined(separator: " | ") }) \(nodes)\n\(logs)")
        #expect(Set(rows.map { $0[1] }) == Set((1...12).map { "web.\($0)" }))
    }
}
