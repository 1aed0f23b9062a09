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
            let sent = payload.withUnsafeBytes { bytes in
                IPv4SocketAddress(address, port: port).withSockaddr { sendto(descriptor, bytes.baseAddress, bytes.count, 0, $0, $1) }
            }
            guard sent >= 0 else { throw HostNetError("sendto", "\(address):\(port)", errno: errno) }
            return sent
        }
    }
}

extension Probe {
    /// Sends one UDP datagram from inside `namespace` and waits up to `timeoutMilliseconds`
    /// for one answer; nil when none came.
    public static func exchangeUDP(
        _ payload: [UInt8], to address: IPv4Address, port: UInt16, from namespace: NetworkNamespace,
        timeoutMilliseconds: Int32 = 1000
    ) throws -> [UInt8]? {
        try exchange(kind: SOCK_DGRAM, payload, to: address, port: port, from: namespace, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Connects over TCP from inside `namespace`, sends `bytes` as they are (framing included),
    /// and returns everything read until the peer closes or `timeoutMilliseconds` of silence.
    public static func exchangeTCP(
        _ bytes: [UInt8], to address: IPv4Address, port: UInt16, from namespace: NetworkNamespace,
        timeoutMilliseconds: Int32 = 1000
    ) throws -> [UInt8] {
        try exchange(kind: SOCK_STREAM, bytes, to: address, port: port, from: namespace, timeoutMilliseconds: timeoutMilliseconds) ?? []
    }

    private static func exchange(
        kind: __socket_type, _ payload: [UInt8], to address: IPv4Address, port: UInt16, from namespace: NetworkNamespace,
        timeoutMilliseconds: Int32
    ) throws -> [UInt8]? {
        let descriptor = try namespace.run { socket(AF_INET, Int32(kind.rawValue), 0) }
        guard descriptor >= 0 else { throw HostNetError("socket", "probe in \(namespace.name)", errno: errno) }
        defer { close(descriptor) }
        let connected = IPv4SocketAddress(address, port: port).withSockaddr { connect(descriptor, $0, $1) }
        guard connected == 0 else { throw HostNetError("connect", "\(address):\(port)", errno: errno) }
        var offset = 0
        // Bounded by the payload: every pass sends at least one byte or fails.
        while offset < payload.count {
            let sent = payload.withUnsafeBytes { send(descriptor, $0.baseAddress! + offset, payload.count - offset, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { break }
            offset += sent
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        // Bounded: each pass waits at most the timeout; a datagram socket stops after one.
        for _ in 0..<1024 {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, timeoutMilliseconds) > 0 else { break }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            answer += chunk[0..<count]
            if kind == SOCK_DGRAM { return answer }
        }
        return kind == SOCK_DGRAM ? nil : answer
    }
}
