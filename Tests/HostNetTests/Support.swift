import Glibc
import HostNet
import Testing

/// Root-only tests create namespaces and links; without root they are skipped with this reason.
let isRoot = getuid() == 0
let needsRoot: Comment = "needs root: creates network namespaces and links"

/// A namespace name no other test (or test run) uses. The first call also removes scratch
/// namespaces left by an earlier run that crashed.
func uniqueNamespaceName(_ purpose: String) -> String {
    _ = orphansRemoved
    return NetworkNamespace.scratchName(purpose)
}

private let orphansRemoved: Void = { NetworkNamespace.removeOrphanedScratch() }()

/// Creates a namespace for `body` and deletes it afterwards, also when `body` throws.
func withTestNamespace<T>(_ purpose: String, _ body: (NetworkNamespace) throws -> T) throws -> T {
    let namespace = try NetworkNamespace.create(named: uniqueNamespaceName(purpose))
    defer { try? namespace.delete() }
    return try body(namespace)
}

/// Runs `ip` (iproute2) as an independent observer of what HostNet did.
func ip(_ arguments: String, in namespace: NetworkNamespace? = nil) throws -> String {
    let result = try NamespacedProcess.run(["ip"] + arguments.split(separator: " ").map(String.init), in: namespace)
    #expect(result.status == 0, "ip \(arguments): \(result.output)")
    return result.output
}
