import ServiceDNS
import Wire

/// The records every DNS test serves: two networks, a vip service, a dnsrr service, a
/// 200-replica service, an SRV port, and two sandboxes that each see one network.
enum Fixture {
    static let webTasks = (1...3).map { TaskRecord(slot: $0, id: "t\($0)abc", address: IPv4Address(10, 0, 1, UInt8(2 + $0))) }
    static let rrTasks = (1...3).map { TaskRecord(slot: $0, id: "r\($0)", address: IPv4Address(10, 0, 1, UInt8(5 + $0))) }
    static let bigTasks = (1...200).map { TaskRecord(slot: $0, id: "b\($0)", address: IPv4Address(10, 0, 2, UInt8($0))) }

    static func records(webMode: EndpointMode = .vip) -> DNSRecords {
        DNSRecords(
            networks: [
                "front": [
                    ServiceRecord(name: "my-web", mode: webMode, vip: IPv4Address(10, 0, 1, 2), tasks: webTasks,
                                  ports: [PortRecord(name: "http", protocol: "tcp", port: 80)]),
                    ServiceRecord(name: "my-rr", mode: .dnsrr, tasks: rrTasks),
                    ServiceRecord(name: "big", mode: .vip, vip: IPv4Address(10, 0, 1, 100), tasks: bigTasks),
                ],
                "back": [ServiceRecord(name: "only-back", mode: .vip, vip: IPv4Address(10, 0, 9, 2))],
            ],
            sandboxes: ["t1": ["front"], "t2": ["back"]])
    }

    /// A query in wire form.
    static func query(_ name: String, type: UInt16 = 1, id: UInt16 = 0x1234, edns: (size: UInt16, version: UInt8)? = nil,
                      flags: UInt16 = 0x0100) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), UInt8(flags >> 8), UInt8(flags & 0xFF), 0, 1, 0, 0, 0, 0, 0, edns == nil ? 0 : 1]
        for label in name.split(separator: ".") { bytes += [UInt8(label.utf8.count)] + Array(label.utf8) }
        bytes += [0, UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
        if let edns { bytes += [0, 0, 41, UInt8(edns.size >> 8), UInt8(edns.size & 0xFF), 0, edns.version, 0, 0, 0, 0] }
        return bytes
    }

    /// A decoded response: code, flags, and the A addresses / other records it carries.
    struct Response {
        var id: UInt16
        var code: Int
        var truncated: Bool
        var answerCount: Int
        var addresses: [IPv4Address]
        var hasOPT: Bool
        var extendedCode: UInt8
    }

    static func decode(_ bytes: [UInt8]) -> Response {
        let answers = Int(bytes[6]) << 8 | Int(bytes[7])
        var position = 12
        let questions = Int(bytes[4]) << 8 | Int(bytes[5])
        for _ in 0..<questions {
            while bytes[position] != 0 { position += Int(bytes[position]) + 1 }
            position += 5
        }
        var addresses: [IPv4Address] = []
        for _ in 0..<answers {
            position += bytes[position] & 0xC0 == 0xC0 ? 2 : 0
            let type = Int(bytes[position]) << 8 | Int(bytes[position + 1])
            let length = Int(bytes[position + 8]) << 8 | Int(bytes[position + 9])
            if type == 1 {
                addresses.append(IPv4Address(bytes[position + 10], bytes[position + 11], bytes[position + 12], bytes[position + 13]))
            }
            position += 10 + length
        }
        let additional = Int(bytes[10]) << 8 | Int(bytes[11])
        var extended: UInt8 = 0
        if additional == 1, position + 11 <= bytes.count, bytes[position] == 0, bytes[position + 2] == 41 {
            extended = bytes[position + 5]
        }
        return Response(id: UInt16(bytes[0]) << 8 | UInt16(bytes[1]), code: Int(bytes[3] & 0xF), truncated: bytes[2] & 0x02 != 0,
                        answerCount: answers, addresses: addresses, hasOPT: additional == 1, extendedCode: extended)
    }
}
