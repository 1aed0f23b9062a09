import CShoal
import Glibc

/// A named network namespace, as `ip netns` names them: a bind mount at `/run/netns/NAME`.
///
/// Code runs inside a namespace through ``run(_:)``, which moves the *calling thread* in and
/// back out. Sockets and TAP devices keep the namespace they were created in, so a daemon
/// creates them inside ``run(_:)`` and then serves them from any thread.
public struct NetworkNamespace: Hashable, Sendable, CustomStringConvertible {
    /// Where named namespaces live (shared with iproute2).
    public static let directory = "/run/netns"

    /// The name under ``directory``.
    public let name: String

    /// The bind-mount path of the namespace.
    public var path: String { "\(Self.directory)/\(name)" }

    public var description: String { name }

    /// Refers to an existing namespace by name (does not check that it exists).
    public init(named name: String) {
        precondition(!name.isEmpty && !name.contains("/"), "invalid namespace name \(name)")
        self.name = name
    }

    /// Creates a new, empty network namespace with the given name; fails with EEXIST if one
    /// by that name exists. Its loopback is brought up, as a container runtime would.
    @discardableResult
    public static func create(named name: String) throws(HostNetError) -> NetworkNamespace {
        let namespace = NetworkNamespace(named: name)
        try check(shoal_netns_create(directory, name), "create network namespace", name)
        do {
            let netlink = try RouteNetlink(in: namespace)
            try netlink.setLinkUp(try netlink.linkIndex(named: "lo"))
        } catch {
            try? namespace.delete()
            throw error
        }
        return namespace
    }

    /// True when `/run/netns/NAME` exists.
    public var exists: Bool { access(path, F_OK) == 0 }

    /// The names of all named namespaces on this host.
    public static func all() -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Unmounts and removes the namespace. The kernel destroys it (and every link in it) once
    /// no process or open file keeps it alive.
    public func delete() throws(HostNetError) {
        try check(shoal_netns_delete(path), "delete network namespace", name)
    }

    /// Opens the namespace file; the caller closes the descriptor.
    public func openDescriptor() throws(HostNetError) -> Int32 {
        try checkErrno(open(path, O_RDONLY | O_CLOEXEC), "open network namespace", name)
    }

    /// Writes a sysctl of this namespace (`net.ipv6.conf.eth0.disable_ipv6` → `1`); the
    /// `net.*` tree under /proc/sys belongs to the namespace of the thread that opens it.
    public func setSysctl(_ name: String, _ value: String) throws {
        let path = "/proc/sys/" + name.split(separator: ".").joined(separator: "/")
        try run {
            let descriptor = try checkErrno(open(path, O_WRONLY | O_CLOEXEC), "open sysctl", "\(name) in \(self.name)")
            defer { close(descriptor) }
            let written = value.withCString { write(descriptor, $0, strlen($0)) }
            if written < 0 { throw HostNetError("write sysctl", "\(name)=\(value) in \(self.name)", errno: errno) }
        }
    }

    /// Moves the calling thread into this namespace for the rest of its life: every socket it
    /// makes from now on is made here. Only for a thread the caller owns and dedicates to the
    /// namespace (an event loop serving it); others use ``run(_:)``.
    public func enterForGood() throws(HostNetError) {
        let target = try openDescriptor()
        defer { close(target) }
        try check(shoal_setns_net(target), "enter network namespace", name)
    }

    /// Runs `body` on the calling thread with the thread moved into this namespace, then
    /// moves it back. `body` must be synchronous: a suspension could resume on another thread.
    public func run<T>(_ body: () throws -> T) throws -> T {
        let target = try openDescriptor()
        defer { close(target) }
        let saved = try checkErrno(
            open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC), "open own network namespace", "thread")
        defer { close(saved) }
        try check(shoal_setns_net(target), "enter network namespace", name)
        defer {
            // A thread left in the wrong namespace would send later traffic from the wrong
            // place without any error; stopping is the only safe answer.
            precondition(shoal_setns_net(saved) == 0, "cannot return thread from namespace \(name)")
        }
        return try body()
    }
}
