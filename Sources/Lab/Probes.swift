import Glibc
import HostNet
import Wire

/// Small traffic sources for labs: the raw datagrams tests and demos send from inside a node.
public enum Probe {
    /// Sends one UDP datagram with `payload` from inside `namespace` to `address:port`.
    /// Returns the number of bytes the kernel took.
    @discardableResult
    public static func sendUDP(_ payload: [UInt8], to address: IPv4Address, port: UInt16, from namespace: NetworkNamespace)
        throws -> Int
    {
        try namespace.run {
            let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard descriptor >= 0 else { throw HostNetError("socket", "udp in \(namespace.name)", errno: errno) }
            defer { close(descriptor) }
            var target = sockaddr_in()
            target.sin_family = sa_family_t(AF_INET)
            target.sin_port = port.bigEndian
            target.sin_addr.s_addr = address.rawValue.bigEndian
            let sent = payload.withUnsafeBytes { bytes in
                withUnsafePointer(to: &target) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(descriptor, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            guard sent >= 0 else { throw HostNetError("sendto", "\(address):\(port)", errno: errno) }
            return sent
        }
    }
}
