// The overlay's decapsulation path on arbitrary bytes: a datagram from one of several VTEPs
// (known for one network, known for another, unknown) goes through Switch.fromWire, and a
// frame from a local port goes through Switch.fromPort — including the in-place ARP rewrites.
// With bit 6 of the selector set, the input is cut into frames that go through the software
// GRO (TCPCoalescing) and TSO (Segmentation) instead: every frame must come out in exactly
// one result, whatever the bytes.
// Any crash, out-of-bounds access (AddressSanitizer) or failed precondition is a finding;
// every verdict, drops included, is an acceptable outcome.
import FuzzDriver
import Overlay
import Wire

let red = OverlayNetwork(name: "red", vni: VNI(100)!, subnet: IPv4Prefix("10.1.0.0/24")!, gateway: IPv4Address(10, 1, 0, 1))
let green = OverlayNetwork(name: "green", vni: VNI(200)!, subnet: IPv4Prefix("10.1.0.0/24")!, gateway: IPv4Address(10, 1, 0, 1))
let topology = Topology(
    networks: [red, green],
    localEndpoints: [
        LocalEndpoint(network: "red", address: IPv4Address(10, 1, 0, 2), namespace: "a"),
        LocalEndpoint(network: "red", address: IPv4Address(10, 1, 0, 3), namespace: "b"),
        LocalEndpoint(network: "green", address: IPv4Address(10, 1, 0, 2), namespace: "c"),
    ],
    remoteEndpoints: [
        RemoteEndpoint(network: "red", address: IPv4Address(10, 1, 0, 9), vtep: IPv4Address(192, 0, 2, 21)),
        RemoteEndpoint(network: "green", address: IPv4Address(10, 1, 0, 9), vtep: IPv4Address(192, 0, 2, 22)),
    ])
let tables = ForwardingTables(topology: topology, ports: topology.localEndpoints, maximumFrameLength: 1464)
let vteps = [IPv4Address(192, 0, 2, 21), IPv4Address(192, 0, 2, 22), IPv4Address(192, 0, 2, 99)]

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let selector = Int(data[0])
    let input = UnsafeMutableRawBufferPointer.allocate(byteCount: size - 1, alignment: 1)
    defer { input.deallocate() }
    input.copyMemory(from: UnsafeRawBufferPointer(start: data + 1, count: size - 1))
    if selector & 0x40 != 0 {
        offloads(input, segmentSize: selector & 0x3F)
        return 0
    }
    let verdict: Verdict
    if selector & 0x80 == 0 {
        var network = -1
        verdict = tables.view.fromWire(vtep: vteps[selector % vteps.count], datagram: input, networkIndex: &network)
        precondition(network >= -1 && network < topology.networks.count)
    } else {
        verdict = tables.view.fromPort(selector % topology.localEndpoints.count, frame: input)
    }
    if case .deliver(let port) = verdict { precondition(port < topology.localEndpoints.count) }
    return 0
}

nonisolated(unsafe) let output = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
nonisolated(unsafe) let results = UnsafeMutableBufferPointer<CoalescedFrame>.allocate(capacity: 64)
nonisolated(unsafe) let lengths = UnsafeMutableBufferPointer<Int>.allocate(capacity: 64)

/// Cuts `input` into frames at 2-byte big-endian lengths, then coalesces and segments them.
func offloads(_ input: UnsafeMutableRawBufferPointer, segmentSize: Int) {
    var frames: [UnsafeMutableRawBufferPointer] = []
    var position = 0
    while position + 2 <= input.count, frames.count < 64 {
        let length = min(Int(input[position]) << 8 | Int(input[position + 1]), input.count - position - 2)
        frames.append(input.slice(position + 2, position + 2 + length))
        position += 2 + length
    }
    if let count = try? frames.withUnsafeBufferPointer({ try TCPCoalescing.coalesce($0, into: output, results: results) }) {
        precondition((0..<count).reduce(0) { $0 + results[$1].segments } == frames.count, "a frame lost or duplicated")
    }
    if let first = frames.first {
        _ = try? Segmentation.segment(first, maximumSegmentSize: segmentSize * 64 + 1, into: output, slotSize: 1 << 16, lengths: lengths)
    }
}

/// SwiftPM's renamed `main` for this target.
@_cdecl("OverlayFuzz_main")
func overlayFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in fuzz(data, size) }
}
