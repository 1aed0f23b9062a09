/// DNS record types Shoal answers or recognizes.
public struct DNSType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let a = DNSType(rawValue: 1)
    public static let ptr = DNSType(rawValue: 12)
    public static let aaaa = DNSType(rawValue: 28)
    public static let srv = DNSType(rawValue: 33)
    public static let opt = DNSType(rawValue: 41)
    public static let ixfr = DNSType(rawValue: 251)
    public static let axfr = DNSType(rawValue: 252)
    public static let any = DNSType(rawValue: 255)
    public var description: String {
        switch self {
        case .a: "A"
        case .ptr: "PTR"
        case .aaaa: "AAAA"
        case .srv: "SRV"
        case .any: "ANY"
        default: "TYPE\(rawValue)"
        }
    }
}

/// Response codes (RFC 1035, RFC 6891 for BADVERS).
public enum DNSResponseCode: UInt16, Sendable {
    case noError = 0, formatError = 1, serverFailure = 2, nameError = 3, notImplemented = 4, refused = 5
    case badVersion = 16
}

/// Why a message was refused by the parser.
public enum DNSParseError: Error, Equatable, Sendable {
    /// Shorter than a header, or a field runs past the end.
    case truncated
    case nameTooLong
    case badLabelType
    /// A compression pointer forward, to itself, or one too many.
    case badPointer
    /// Section counts that the message cannot hold, or bytes left over after them.
    case countMismatch
    case notOneQuestion
    case malformedOPT
}

/// A parsed query: everything the resolver needs, nothing more. Built from bytes by
/// ``parse(_:)``, which validates the whole message.
public struct DNSQuery: Sendable {
    public var id: UInt16
    /// The flags word of the query (opcode, RD, …).
    public var flags: UInt16
    public var name: DNSName
    public var type: DNSType
    public var `class`: UInt16
    /// Bytes of the question section on the wire (name, type, class), to echo in the answer.
    public var question: [UInt8]
    /// The EDNS0 OPT record, when the query had one.
    public var edns: EDNS?

    public struct EDNS: Sendable, Equatable {
        /// The client's UDP payload size, at least 512.
        public var payloadSize: Int
        public var version: UInt8
        public var dnssecOK: Bool
    }

    public var opcode: Int { Int(flags >> 11) & 0xF }
    public var isResponse: Bool { flags & 0x8000 != 0 }
    public var recursionDesired: Bool { flags & 0x0100 != 0 }

    /// Reads the header only: enough to answer FORMERR with the right ID when the rest is bad.
    static func header(_ message: UnsafeRawBufferPointer) -> (id: UInt16, flags: UInt16)? {
        guard message.count >= 12 else { return nil }
        return (UInt16(message[0]) << 8 | UInt16(message[1]), UInt16(message[2]) << 8 | UInt16(message[3]))
    }

    /// Parses a whole query: header, exactly one question, no answer or authority records, at
    /// most one additional record (the OPT), nothing after it.
    public static func parse(_ message: UnsafeRawBufferPointer) throws(DNSParseError) -> DNSQuery {
        guard let (id, flags) = header(message) else { throw .truncated }
        func count(_ offset: Int) -> Int { Int(message[offset]) << 8 | Int(message[offset + 1]) }
        let questions = count(4), answers = count(6), authority = count(8), additional = count(10)
        guard questions == 1 else { throw .notOneQuestion }
        // Every record takes at least 11 bytes (root name, type, class, TTL, length): a count
        // the message cannot hold is refused before any record is read.
        guard answers == 0, authority == 0, additional <= 1, 12 + 5 + additional * 11 <= message.count else {
            throw .countMismatch
        }
        let (name, afterName) = try DNSName.read(from: message, at: 12)
        guard afterName + 4 <= message.count else { throw .truncated }
        let type = DNSType(rawValue: UInt16(message[afterName]) << 8 | UInt16(message[afterName + 1]))
        let qclass = UInt16(message[afterName + 2]) << 8 | UInt16(message[afterName + 3])
        var position = afterName + 4
        let question = Array(message[12..<position])
        var edns: EDNS?
        if additional == 1 {
            let (owner, afterOwner) = try DNSName.read(from: message, at: position)
            guard afterOwner + 10 <= message.count else { throw .truncated }
            let recordType = UInt16(message[afterOwner]) << 8 | UInt16(message[afterOwner + 1])
            let length = count(afterOwner + 8)
            guard afterOwner + 10 + length <= message.count else { throw .truncated }
            if recordType == DNSType.opt.rawValue {
                guard owner.text.isEmpty else { throw .malformedOPT }
                edns = EDNS(
                    payloadSize: max(512, count(afterOwner + 2)), version: message[afterOwner + 5],
                    dnssecOK: message[afterOwner + 6] & 0x80 != 0)
            }
            position = afterOwner + 10 + length
        }
        guard position == message.count else { throw .countMismatch }
        return DNSQuery(id: id, flags: flags, name: name, type: type, class: qclass, question: question, edns: edns)
    }
}

/// Builds a response into one growing byte array. The question is echoed first, so answers
/// for the question's own name point back at it (compression pointer to offset 12).
struct DNSResponseWriter {
    private(set) var bytes: [UInt8]
    private var answerCount = 0
    private var additionalCount = 0

    /// TTL of every record Shoal owns: the record store changes by snapshot, and Docker's
    /// embedded DNS uses the same 600 s.
    static let ttl: UInt32 = 600

    /// Starts a response to `query` with `code`; the question is echoed when given.
    init(id: UInt16, queryFlags: UInt16, code: DNSResponseCode, question: [UInt8]?, authoritative: Bool = true) {
        bytes = []
        bytes.reserveCapacity(512)
        var flags: UInt16 = 0x8000 | (queryFlags & 0x7900)  // QR, opcode, RD copied
        flags |= 0x0080  // RA: anything not ours is recursed upstream
        if authoritative { flags |= 0x0400 }
        flags |= code.rawValue & 0xF
        append16(id)
        append16(flags)
        append16(question == nil ? 0 : 1)
        append16(0)
        append16(0)
        append16(0)
        if let question { bytes += question }
    }

    mutating func append16(_ value: UInt16) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    mutating func append32(_ value: UInt32) {
        append16(UInt16(value >> 16))
        append16(UInt16(truncatingIfNeeded: value))
    }

    /// An A record for the question's name.
    mutating func addA(_ address: UInt32) {
        bytes += [0xC0, 0x0C]
        append16(DNSType.a.rawValue)
        append16(1)
        append32(Self.ttl)
        append16(4)
        append32(address)
        answerCount += 1
        setCount(6, answerCount)
    }

    /// A record for the question's name with a domain-name RDATA (PTR).
    mutating func addName(type: DNSType, _ target: [UInt8]) {
        bytes += [0xC0, 0x0C]
        append16(type.rawValue)
        append16(1)
        append32(Self.ttl)
        append16(UInt16(target.count))
        bytes += target
        answerCount += 1
        setCount(6, answerCount)
    }

    /// An SRV record for the question's name.
    mutating func addSRV(priority: UInt16, weight: UInt16, port: UInt16, target: [UInt8]) {
        bytes += [0xC0, 0x0C]
        append16(DNSType.srv.rawValue)
        append16(1)
        append32(Self.ttl)
        append16(UInt16(6 + target.count))
        append16(priority)
        append16(weight)
        append16(port)
        bytes += target
        answerCount += 1
        setCount(6, answerCount)
    }

    /// The OPT record of an EDNS0 response (RFC 6891 §6.1.2); `extendedCode` holds the upper
    /// eight bits of a 12-bit RCODE.
    mutating func addOPT(payloadSize: UInt16, extendedCode: UInt8 = 0) {
        bytes.append(0)
        append16(DNSType.opt.rawValue)
        append16(payloadSize)
        bytes += [extendedCode, 0, 0, 0]
        append16(0)
        additionalCount += 1
        setCount(10, additionalCount)
    }

    /// Drops the answers and sets TC: the client must ask again over TCP.
    mutating func truncate(to questionEnd: Int) {
        bytes.removeSubrange(questionEnd...)
        bytes[2] |= 0x02
        answerCount = 0
        additionalCount = 0
        setCount(6, 0)
        setCount(10, 0)
    }

    private mutating func setCount(_ offset: Int, _ value: Int) {
        bytes[offset] = UInt8(value >> 8)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: value)
    }
}
