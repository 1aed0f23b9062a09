import NIOCore
import Wire

/// The PROXY protocol version 2 header (haproxy's `proxy-protocol.txt`, §2.2) a relay sends
/// first on each connection it makes to a task, so that a PROXY-aware server (nginx
/// `proxy_protocol`, haproxy `accept-proxy`, Envoy's listener filter) learns the client's real
/// address and the address it connected to. Binary form, TCP over IPv4: 28 bytes.
///
/// Written by hand: it is a fixed layout of 28 bytes, and no package in reach writes it
/// (SwiftNIO ships none; swift-nio-extras has no PROXY codec).
struct ProxyProtocolHeader: Equatable {
    /// The client, as the relay saw it.
    var source: IPv4Address
    var sourcePort: UInt16
    /// The address and port the client connected to (the node's published port).
    var destination: IPv4Address
    var destinationPort: UInt16

    /// The twelve bytes every version 2 header starts with ("\r\n\r\n\0\r\nQUIT\n").
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// Version 2 in the high nibble, command PROXY (1) in the low one.
    static let versionAndCommand: UInt8 = 0x21
    /// Address family AF_INET (1) in the high nibble, transport STREAM (1) in the low one.
    static let inetStream: UInt8 = 0x11
    /// What follows the 16 fixed bytes: two addresses and two ports.
    static let addressLength: UInt16 = 12
    /// The whole header's size.
    static let size = 16 + Int(addressLength)

    /// The header for a relayed connection, or nil when either end is not IPv4 (the routing
    /// mesh listens on IPv4 only, so that does not happen there).
    init?(client: SocketAddress?, server: SocketAddress?) {
        guard case .v4(let client) = client, case .v4(let server) = server else { return nil }
        self.init(
            source: IPv4Address(rawValue: UInt32(bigEndian: client.address.sin_addr.s_addr)),
            sourcePort: UInt16(bigEndian: client.address.sin_port),
            destination: IPv4Address(rawValue: UInt32(bigEndian: server.address.sin_addr.s_addr)),
            destinationPort: UInt16(bigEndian: server.address.sin_port))
    }

    init(source: IPv4Address, sourcePort: UInt16, destination: IPv4Address, destinationPort: UInt16) {
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
    }

    /// Appends the header's 28 bytes to `buffer`.
    func write(to buffer: inout ByteBuffer) {
        buffer.writeBytes(Self.signature)
        buffer.writeInteger(Self.versionAndCommand)
        buffer.writeInteger(Self.inetStream)
        buffer.writeInteger(Self.addressLength)
        buffer.writeInteger(source.rawValue)
        buffer.writeInteger(destination.rawValue)
        buffer.writeInteger(sourcePort)
        buffer.writeInteger(destinationPort)
    }
}
