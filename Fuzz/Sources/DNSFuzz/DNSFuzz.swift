// The DNS server's parser and resolver on arbitrary bytes, over UDP and over TCP rules: every
// message must end in a response, a forward or a counted drop — never a crash, a read out of
// bounds (AddressSanitizer), or a response that is not itself a well-formed header.
import FuzzDriver
import ServiceDNS
import Wire

let store = try! RecordStore(DNSRecords(
    networks: [
        "front": [
            ServiceRecord(name: "my-web", mode: .vip, vip: IPv4Address(10, 0, 1, 2),
                          tasks: (1...3).map { TaskRecord(slot: $0, id: "t\($0)", address: IPv4Address(10, 0, 1, UInt8(2 + $0))) },
                          ports: [PortRecord(name: "http", protocol: "tcp", port: 80)]),
            ServiceRecord(name: "big", mode: .dnsrr,
                          tasks: (1...200).map { TaskRecord(slot: $0, id: "b\($0)", address: IPv4Address(10, 0, 2, UInt8($0))) }),
        ],
    ],
    sandboxes: ["t1": ["front"]]))
let resolver = DNSResolver(store: store)

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let overTCP = data[0] & 1 == 1
    let input = UnsafeMutableRawBufferPointer.allocate(byteCount: size - 1, alignment: 1)
    defer { input.deallocate() }
    input.copyMemory(from: UnsafeRawBufferPointer(start: data + 1, count: size - 1))
    switch resolver.resolve(UnsafeRawBufferPointer(input), sandbox: "t1", overTCP: overTCP) {
    case .respond(let bytes):
        precondition(bytes.count >= 12 && bytes[2] & 0x80 != 0, "a response without a response header")
        precondition(overTCP || bytes.count <= DNSResolver.maximumUDPPayload, "a UDP answer over the size limit")
        precondition(bytes[0] == data[1] && bytes[1] == data[2], "a response with another ID")
    case .forward(let query):
        precondition(query.question.count >= 5, "a forward without a question")
    case .drop:
        break
    }
    return 0
}

/// SwiftPM's renamed `main` for this target.
@_cdecl("DNSFuzz_main")
func dnsFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data, size) }
}
