/// A domain name read from a DNS message, kept as the lowercase dotted text Shoal's record
/// store is keyed by (`my-web`, `tasks.my-web`, `3.2.0.10.in-addr.arpa`), without the
/// trailing dot.
///
/// Reading follows RFC 1035 §4.1.4 strictly and boundedly: labels of at most 63 bytes, names of
/// at most 255 bytes on the wire, compression pointers only to earlier bytes of the message
/// (so no loop can form), at most 127 pointers per name, and no label types other than plain
/// (00) and pointer (11).
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    /// Lowercase, dot-separated, no trailing dot; empty for the root.
    public let text: String

    public init(_ text: String) {
        var trimmed = Substring(text)
        if trimmed.hasSuffix(".") { trimmed = trimmed.dropLast() }
        self.text = trimmed.lowercased()
    }

    public var description: String { text.isEmpty ? "." : text + "." }

    /// The labels, in order.
    public var labels: [Substring] { text.isEmpty ? [] : text.split(separator: ".", omittingEmptySubsequences: false) }

    /// Reads a name at `offset` of `message`; returns it and the offset just past it in the
    /// original position (a pointer counts as two bytes there).
    static func read(from message: UnsafeRawBufferPointer, at offset: Int) throws(DNSParseError) -> (DNSName, Int) {
        var position = offset
        var end: Int?  // where the name ends in the original position, once a pointer was taken
        var wireLength = 1  // the root label
        var pointers = 0
        var lowest = offset  // pointers must go strictly below every byte already read
        var text: [UInt8] = []
        text.reserveCapacity(64)
        while true {
            guard position < message.count else { throw .truncated }
            let length = Int(message[position])
            switch length & 0xC0 {
            case 0x00:
                if length == 0 {
                    return (DNSName(lowercasedBytes: text), end ?? position + 1)
                }
                guard position + 1 + length <= message.count else { throw .truncated }
                wireLength += length + 1
                guard wireLength <= 255 else { throw .nameTooLong }
                if !text.isEmpty { text.append(UInt8(ascii: ".")) }
                for index in (position + 1)...(position + length) {
                    let byte = message[index]
                    text.append(byte >= 65 && byte <= 90 ? byte + 32 : byte)
                }
                position += length + 1
            case 0xC0:
                guard position + 1 < message.count else { throw .truncated }
                let target = (length & 0x3F) << 8 | Int(message[position + 1])
                pointers += 1
                guard target < lowest, pointers < 128 else { throw .badPointer }
                if end == nil { end = position + 2 }
                lowest = target
                position = target
            default:
                throw .badLabelType
            }
        }
    }

    private init(lowercasedBytes: [UInt8]) {
        text = String(decoding: lowercasedBytes, as: UTF8.self)
    }

    /// The wire form of the name, uncompressed; nil if a label is empty or longer than 63
    /// bytes, or the whole longer than 255.
    public var wire: [UInt8]? {
        var bytes: [UInt8] = []
        for label in labels {
            let utf8 = Array(label.utf8)
            guard !utf8.isEmpty, utf8.count <= 63 else { return nil }
            bytes.append(UInt8(utf8.count))
            bytes += utf8
        }
        bytes.append(0)
        return bytes.count <= 255 ? bytes : nil
    }
}
