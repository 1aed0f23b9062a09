import Foundation
import Glibc

/// One task's control groups: a place that holds every process of the task (so none is left
/// behind when it stops) and enforces its memory and CPU limits. Uses cgroup v2 where the
/// unified hierarchy is mounted at /sys/fs/cgroup with the memory controller; on a hybrid
/// host (v1 controllers beside a v2 tree at /sys/fs/cgroup/unified, as this project's CI
/// machines are) it tracks processes in the v2 tree and limits through v1's memory and cpu.
public struct ControlGroup: Sendable, Equatable, Codable {
    /// The directories made for the task, one per hierarchy.
    public let directories: [String]
    /// Which hierarchy enforces memory (and reports kills by the memory limit).
    let memoryDirectory: String?
    /// True when ``memoryDirectory`` is in a v2 hierarchy.
    let unified: Bool

    /// The root of the cgroup file systems.
    static let root = "/sys/fs/cgroup"
    /// The directory under each hierarchy that holds Shoal's tasks.
    public static let parent = "shoal"

    /// Makes the groups of `name` (unique per task) with the limits given (0: none): memory
    /// in bytes, CPU in billionths of a core. Nothing is left behind on failure.
    public static func create(named name: String, memoryLimit: Int64, nanoCPUs: Int64) throws(HostNetError) -> ControlGroup {
        let pureV2 = FileManager.default.fileExists(atPath: "\(root)/cgroup.controllers")
        var made: [String] = []
        func make(_ hierarchy: String) throws(HostNetError) -> String {
            let parent = "\(hierarchy)/\(Self.parent)"
            if mkdir(parent, 0o755) != 0 && errno != EEXIST { throw HostNetError("mkdir", parent, errno: errno) }
            let directory = "\(parent)/\(name)"
            if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw HostNetError("mkdir", directory, errno: errno) }
            made.append(directory)
            return directory
        }
        do throws(HostNetError) {
            if pureV2 {
                // Controllers reach a child only when its parent delegates them.
                let parent = "\(root)/\(Self.parent)"
                if mkdir(parent, 0o755) != 0 && errno != EEXIST { throw HostNetError("mkdir", parent, errno: errno) }
                try? write("+memory +cpu", to: "\(root)/cgroup.subtree_control")
                try? write("+memory +cpu", to: "\(parent)/cgroup.subtree_control")
                let directory = try make(root)
                if memoryLimit > 0 { try write("\(memoryLimit)", to: "\(directory)/memory.max") }
                if nanoCPUs > 0 { try write("\(cpuQuota(nanoCPUs)) \(cpuPeriod)", to: "\(directory)/cpu.max") }
                return ControlGroup(directories: made, memoryDirectory: directory, unified: true)
            }
            var memoryDirectory: String?
            if FileManager.default.fileExists(atPath: "\(root)/unified/cgroup.procs") { _ = try make("\(root)/unified") }
            if FileManager.default.fileExists(atPath: "\(root)/memory/cgroup.procs") {
                let directory = try make("\(root)/memory")
                memoryDirectory = directory
                if memoryLimit > 0 {
                    try write("\(memoryLimit)", to: "\(directory)/memory.limit_in_bytes")
                    // Without swap accounting the limit would let the task page out instead.
                    try? write("\(memoryLimit)", to: "\(directory)/memory.memsw.limit_in_bytes")
                }
            } else if memoryLimit > 0 {
                throw HostNetError("limit memory", name, errno: ENOTSUP)
            }
            if nanoCPUs > 0 {
                let hierarchy = FileManager.default.fileExists(atPath: "\(root)/cpu/cgroup.procs") ? "\(root)/cpu" : "\(root)/cpu,cpuacct"
                let directory = try make(hierarchy)
                try write("\(cpuPeriod)", to: "\(directory)/cpu.cfs_period_us")
                try write("\(cpuQuota(nanoCPUs))", to: "\(directory)/cpu.cfs_quota_us")
            }
            guard !made.isEmpty else { throw HostNetError("create cgroup", name, errno: ENOTSUP) }
            return ControlGroup(directories: made, memoryDirectory: memoryDirectory, unified: false)
        } catch {
            for directory in made.reversed() { rmdir(directory) }
            throw error
        }
    }

    /// The `cgroup.procs` files a process writes to join every group.
    public var procsFiles: [String] { directories.map { "\($0)/cgroup.procs" } }

    /// Every process in the groups now.
    public var processes: [Int32] {
        var pids: Set<Int32> = []
        for file in procsFiles {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            pids.formUnion(text.split(separator: "\n").compactMap { Int32($0) })
        }
        return pids.sorted()
    }

    /// How many times the memory limit killed a process of the task.
    public var memoryLimitKills: UInt64 {
        guard let directory = memoryDirectory else { return 0 }
        let file = unified ? "\(directory)/memory.events" : "\(directory)/memory.oom_control"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == "oom_kill" { return UInt64(fields[1]) ?? 0 }
        }
        return 0
    }

    /// Kills every process left in the groups and removes them. Bounded: gives up after 2 s
    /// of processes that do not die (reported as an error, the groups left in place).
    public func remove() throws(HostNetError) {
        for attempt in 0..<200 {
            let left = processes
            if left.isEmpty { break }
            for pid in left { kill(pid, SIGKILL) }
            if attempt == 199 { throw HostNetError("empty cgroup", directories.first ?? "", errno: EBUSY) }
            usleep(10_000)
        }
        for directory in directories.reversed() {
            // A group that just emptied may still be busy for a moment.
            var removed = false
            for _ in 0..<100 where !removed {
                removed = rmdir(directory) == 0 || errno == ENOENT
                if !removed { usleep(10_000) }
            }
            if !removed { throw HostNetError("rmdir", directory, errno: errno) }
        }
    }

    static let cpuPeriod = 100_000

    static func cpuQuota(_ nanoCPUs: Int64) -> Int64 { max(1_000, nanoCPUs * Int64(cpuPeriod) / 1_000_000_000) }

    private static func write(_ text: String, to path: String) throws(HostNetError) {
        let descriptor = open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw HostNetError("open", path, errno: errno) }
        defer { close(descriptor) }
        let written = text.withCString { Glibc.write(descriptor, $0, strlen($0)) }
        guard written == text.utf8.count else { throw HostNetError("write \(text) to", path, errno: errno) }
    }
}
