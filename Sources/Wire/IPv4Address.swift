/// An IPv4 address as a host-order integer (`10.0.0.1` is `0x0A000001`). The one address type
/// of Shoal: every module that names an IPv4 address uses this.
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// The address in host byte order.
    public let rawValue: UInt32

    /// 0.0.0.0
    public static let any = IPv4Address(rawValue: 0)

    /// Creates an address from its host-order integer form.
    @inlinable
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Creates an address from its four bytes in wire order.
    @inlinable
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad text (`192.0.2.1`); nil for anything else.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCII),
                let byte = UInt8(part, radix: 10)
            else { return nil }
            value = value << 8 | UInt32(byte)
        }
        rawValue = value
    }

    /// The four bytes in wire order.
    public var bytes: [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: rawValue >> $0) } }

    public var description: String { bytes.map(String.init).joined(separator: ".") }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let address = IPv4Address(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not an IPv4 address: \(text)"))
        }
        self = address
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// An address with a prefix length: an interface address (`10.0.0.2/24`) or, with the host
/// bits cleared, a subnet.
public struct IPv4Prefix: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The address as given; host bits are kept.
    public let address: IPv4Address
    /// 0...32
    public let length: Int

    /// Creates a prefix; `length` must be 0...32.
    public init(_ address: IPv4Address, length: Int) {
        precondition((0...32).contains(length), "IPv4 prefix length out of range: \(length)")
        self.address = address
        self.length = length
    }

    /// Parses `a.b.c.d/n`; nil for anything else.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4Address(parts[0]), let length = Int(parts[1]),
            (0...32).contains(length)
        else { return nil }
        self.init(address, length: length)
    }

    /// The netmask as an integer (`/24` is `0xFFFFFF00`).
    public var mask: UInt32 { length == 0 ? 0 : UInt32.max << (32 - length) }

    /// The subnet's own address (host bits cleared).
    public var network: IPv4Address { IPv4Address(rawValue: address.rawValue & mask) }

    /// The subnet's broadcast address.
    public var broadcast: IPv4Address { IPv4Address(rawValue: address.rawValue | ~mask) }

    /// True when `other` lies inside this subnet.
    public func contains(_ other: IPv4Address) -> Bool { other.rawValue & mask == network.rawValue }

    public var description: String { "\(address)/\(length)" }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let prefix = IPv4Prefix(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not an IPv4 prefix: \(text)"))
        }
        self = prefix
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable @inline(__always)
    public func loadIPv4(at offset: Int) -> IPv4Address { IPv4Address(rawValue: loadBigEndian32(at: offset)) }

    @inlinable @inline(__always)
    public func storeIPv4(_ address: IPv4Address, at offset: Int) { storeBigEndian32(address.rawValue, at: offset) }
}
