import DurableFiles
import Foundation
import HostNet
import Logging
import Wire

/// A cluster of "nodes" on one host: each node is a network namespace with one underlay
/// interface (`eth0`) on a shared bridge that lives in the lab's own hub namespace.
///
/// Every name a lab creates contains its unique lab name, so labs brought up in parallel
/// never collide, and a lab only ever removes what its ``LabRecord`` says it created.
///
/// ```
///  shoal-<lab>-hub:  br0 (192.0.2.1/24) ── n1 ── n2 ── …   (veth ends, hub side)
///  shoal-<lab>-n1:   eth0 192.0.2.11/24                      (veth end, node side)
///  shoal-<lab>-n2:   eth0 192.0.2.12/24
/// ```
public final class Lab: @unchecked Sendable {
    /// One node: its namespace and underlay address.
    public struct Node: Sendable, Hashable {
        /// `n1`, `n2`, …
        public let name: String
        public let namespace: NetworkNamespace
        /// The node's address on the underlay (its VTEP address).
        public let underlayAddress: IPv4Address
        /// The underlay interface inside the node's namespace.
        public let underlayInterface = "eth0"
    }

    /// The lab's unique name.
    public var name: String { record.name }
    /// The namespace holding the underlay bridge.
    public let hub: NetworkNamespace
    /// The nodes, `n1` first.
    public let nodes: [Node]
    /// What was created, as written to disk.
    public private(set) var record: LabRecord

    private static let logger = Logger(label: "shoal.lab")

    /// The default underlay: TEST-NET-1, never routed anywhere outside the lab.
    public static let defaultUnderlay = IPv4Prefix(IPv4Address(192, 0, 2, 1), length: 24)

    private init(record: LabRecord) {
        self.record = record
        hub = NetworkNamespace(named: record.namespaces[0])
        nodes = record.nodes.map {
            Node(name: $0.name, namespace: NetworkNamespace(named: $0.namespace), underlayAddress: $0.underlayAddress)
        }
    }

    /// Brings up a lab of `count` nodes. On any failure everything already created is removed
    /// before the error is thrown.
    ///
    /// - Parameters:
    ///   - name: the lab's name (letters, digits, `-`; at most 16); a random one when nil.
    ///   - persistent: keep the lab after this process exits (`shoal lab up`).
    public static func up(nodes count: Int, name: String? = nil, persistent: Bool = false) throws -> Lab {
        guard (1...200).contains(count) else { throw LabError.invalidNodeCount(count) }
        let labName = try name.map(validate) ?? uniqueName()
        let underlay = defaultUnderlay
        let nodes = (1...count).map { index in
            LabRecord.NodeRecord(
                name: "n\(index)", namespace: "shoal-\(labName)-n\(index)",
                underlayAddress: IPv4Address(rawValue: underlay.network.rawValue + 10 + UInt32(index)))
        }
        let record = LabRecord(
            name: labName, owner: .current,
            persistent: persistent, underlay: underlay, nodes: nodes,
            namespaces: ["shoal-\(labName)-hub"] + nodes.map(\.namespace))
        // Claim the name first: a record that exists is a lab that exists.
        guard !FileManager.default.fileExists(atPath: record.path) else { throw LabError.exists(labName) }
        try record.save()
        let lab = Lab(record: record)
        do {
            try lab.build()
        } catch {
            try? lab.down()
            throw error
        }
        logger.info("lab up", metadata: ["lab": "\(labName)", "nodes": "\(count)"])
        return lab
    }

    /// Reattaches to a lab brought up earlier (by this or another process).
    public static func attach(named name: String) throws -> Lab {
        let path = LabRecord.path(forLab: name)
        guard FileManager.default.fileExists(atPath: path) else { throw LabError.notFound(name) }
        return Lab(record: try LabRecord.load(path: path))
    }

    private func build() throws {
        try NetworkNamespace.create(named: hub.name)
        let hubLinks = try RouteNetlink(in: hub)
        try hubLinks.createBridge(named: "br0")
        let bridge = try hubLinks.linkIndex(named: "br0")
        try hubLinks.addAddress(IPv4Prefix(record.underlay.address, length: record.underlay.length), to: bridge)
        try hubLinks.setLinkUp(bridge)
        for node in nodes {
            try NetworkNamespace.create(named: node.namespace.name)
            try hubLinks.createVeth(named: node.name, peer: node.underlayInterface, peerNamespace: node.namespace)
            let hubSide = try hubLinks.linkIndex(named: node.name)
            try hubLinks.setMaster(hubSide, master: bridge)
            try hubLinks.setLinkUp(hubSide)
            let nodeLinks = try RouteNetlink(in: node.namespace)
            let nodeSide = try nodeLinks.linkIndex(named: node.underlayInterface)
            try nodeLinks.addAddress(IPv4Prefix(node.underlayAddress, length: record.underlay.length), to: nodeSide)
            try nodeLinks.setLinkUp(nodeSide)
        }
    }

    /// Creates a namespace that belongs to `node` — a task sandbox or an endpoint — named
    /// `shoal-<lab>-<node>-<suffix>` and recorded before it exists, so teardown removes it.
    public func addNamespace(on node: Node, suffix: String) throws -> NetworkNamespace {
        let namespace = NetworkNamespace(named: "shoal-\(name)-\(node.name)-\(try Self.validate(suffix))")
        if !record.namespaces.contains(namespace.name) {
            record.namespaces.append(namespace.name)
            try record.save()
        }
        try NetworkNamespace.create(named: namespace.name)
        return namespace
    }

    /// Starts a long-running process inside `node` (a daemon), recorded so that teardown
    /// stops it. Its output goes to `log` (a file under the lab's directory) when given.
    @discardableResult
    public func startProcess(on node: Node, _ arguments: [String], log: String? = nil) throws -> ProcessIdentity {
        let process: NamespacedProcess
        if let log {
            let path = try writeFile(log, contents: Data())
            process = try NamespacedProcess(["sh", "-c", "exec \"$@\" >>\(path) 2>&1", "sh"] + arguments, in: node.namespace, captureOutput: false)
        } else {
            process = try NamespacedProcess(arguments, in: node.namespace, captureOutput: false)
        }
        process.detach()
        let identity = ProcessIdentity(pid: process.pid, startTime: ProcessIdentity.startTime(of: process.pid) ?? 0)
        record.processes.append(identity)
        try record.save()
        return identity
    }

    /// Writes a file of the lab (removed at teardown) and returns its path.
    @discardableResult
    public func writeFile(_ name: String, contents: Data) throws -> String {
        let path = "\(record.fileDirectory)/\(name)"
        if !record.files.contains(path) {
            record.files.append(path)
            try record.save()
        }
        try DurableFile.writeAtomically(contents, to: path, mode: 0o644)
        return path
    }

    /// Stops recorded processes: SIGTERM, then SIGKILL after two seconds. Only processes
    /// whose start time still matches are signalled, never a later process with a reused pid.
    static func stop(_ processes: [ProcessIdentity]) {
        let alive = processes.filter(\.isAlive)
        alive.forEach { kill($0.pid, SIGTERM) }
        // A child of this process stays a zombie (and "alive") until reaped; others are
        // reaped by their parent and waitpid simply fails for them.
        func running() -> [ProcessIdentity] {
            alive.filter { waitpid($0.pid, nil, WNOHANG) != $0.pid && $0.isAlive }
        }
        // Bounded: 40 checks, 50 ms apart, then SIGKILL and as many again.
        for _ in 0..<40 where !running().isEmpty { usleep(50_000) }
        running().forEach { kill($0.pid, SIGKILL) }
        for _ in 0..<40 where !running().isEmpty { usleep(50_000) }
    }

    /// The node called `name` (`n1`, …).
    public func node(_ name: String) throws -> Node {
        guard let node = nodes.first(where: { $0.name == name }) else { throw LabError.noSuchNode(name, lab: self.name) }
        return node
    }

    /// Removes every namespace of the lab (which removes every link in them) and its record.
    /// Safe to call more than once, and on a lab whose creation stopped half way.
    public func down() throws {
        try Self.remove(record)
        Self.logger.info("lab down", metadata: ["lab": "\(name)"])
    }

    static func remove(_ record: LabRecord) throws {
        var failures: [String] = []
        stop(record.processes)
        // Daemons killed before (or by) the stop leave their tasks' sandboxes: remove what
        // their records name, as a restarted daemon would.
        SandboxRecord.sweep(under: record.fileDirectory)
        for file in record.files { unlink(file) }
        try? FileManager.default.removeItem(atPath: record.fileDirectory)
        for name in record.namespaces.reversed() {
            let namespace = NetworkNamespace(named: name)
            guard namespace.exists else { continue }
            do { try namespace.delete() } catch { failures.append("\(error)") }
        }
        guard failures.isEmpty else { throw LabError.teardown(record.name, failures) }
        try? FileManager.default.removeItem(atPath: record.path)
    }

    /// Tears down the lab recorded under `name`.
    public static func down(named name: String) throws {
        try remove(try attach(named: name).record)
    }

    /// Removes labs whose owning process has died without tearing them down (a crashed test
    /// run). Persistent labs are left alone. Returns the names removed.
    @discardableResult
    public static func removeStale() -> [String] {
        LabRecord.all().filter { !$0.persistent && !$0.ownerIsAlive }.compactMap { record in
            (try? remove(record)) == nil ? nil : record.name
        }
    }

    static func validate(_ name: String) throws -> String {
        let allowed = name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
        guard !name.isEmpty, name.utf8.count <= 16, allowed else { throw LabError.invalidName(name) }
        return name
    }

    private static func uniqueName() throws -> String {
        for _ in 0..<32 {
            let candidate = String(UInt32.random(in: 0x10_0000...0xFF_FFFF), radix: 16)
            if !FileManager.default.fileExists(atPath: LabRecord.path(forLab: candidate)),
                !NetworkNamespace(named: "shoal-\(candidate)-hub").exists
            {
                return candidate
            }
        }
        throw LabError.invalidName("(no free random name)")
    }
}

/// Why a lab operation failed.
public enum LabError: Error, CustomStringConvertible, Equatable {
    case invalidNodeCount(Int)
    case invalidName(String)
    case exists(String)
    case notFound(String)
    case noSuchNode(String, lab: String)
    case teardown(String, [String])

    public var description: String {
        switch self {
        case .invalidNodeCount(let count): "a lab has 1 to 200 nodes, not \(count)"
        case .invalidName(let name): "invalid lab name '\(name)': use 1-16 of a-z, 0-9 and '-'"
        case .exists(let name): "a lab named '\(name)' already exists; pick another name or run 'shoal lab down \(name)'"
        case .notFound(let name): "no lab named '\(name)' (see 'shoal lab ls')"
        case .noSuchNode(let node, let lab): "lab '\(lab)' has no node '\(node)'"
        case .teardown(let name, let failures):
            "could not remove everything of lab '\(name)': \(failures.joined(separator: "; "))"
        }
    }
}
