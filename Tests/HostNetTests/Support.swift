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

/// Sends one UDP datagram from inside `namespace`.
func sendUDP(_ payload: [UInt8], to address: String, port: UInt16, in namespace: NetworkNamespace) throws {
    try namespace.run {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        inet_pton(AF_INET, address, &target.sin_addr)
        let sent = payload.withUnsafeBytes { bytes in
            withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        #expect(sent == payload.count, "sendto \(address):\(port) errno \(errno)")
    }
}
