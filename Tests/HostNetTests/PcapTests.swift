import Foundation
import Glibc
import HostNet
import Lab
import Testing
import Wire

@Suite struct PcapFileTests {
    /// Frames written by PcapWriter are read back by tcpdump and by PcapReader, byte for byte.
    @Test func writtenFileIsReadByTcpdump() throws {
        let path = NSTemporaryDirectory() + "shoal-pcap-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).pcap"
        defer { unlink(path) }
        var frames: [[UInt8]] = []
        for sequence in 0..<37 {
            var frame = [UInt8](repeating: 0, count: 14 + 20 + 8 + 56)
            try frame.withUnsafeMutableBytes { buffer in
                let source = IPv4Address(10, 0, 0, 1), destination = IPv4Address(10, 0, 0, 2)
                let ethernet = try EthernetFrame.build(
                    in: buffer, destination: .derived(from: destination), source: .derived(from: source), etherType: .ipv4)
                let ip = try IPv4Packet.build(
                    in: ethernet.payload, totalLength: 20 + 8 + 56, protocol: .icmp, source: source, destination: destination)
                _ = try ICMPMessage.buildEcho(
                    in: ip.payload, type: .echoRequest, identifier: 99, sequenceNumber: UInt16(sequence), payloadLength: 56)
            }
            frames.append(frame)
        }
        let writer = try PcapWriter(path: path)
        for frame in frames { frame.withUnsafeBytes { writer.write($0) } }
        #expect(!FileManager.default.fileExists(atPath: path), "the file appears only when complete")
        try writer.close()
        #expect(writer.count == 37)

        let readBack = try PcapReader(path: path)
        #expect(readBack.linkType == 1)
        #expect(try readBack.readAll().map(\.bytes) == frames)

        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tcpdump") || FileManager.default.isExecutableFile(atPath: "/usr/sbin/tcpdump") else {
            Issue.record("tcpdump is not installed (make test installs it)")
            return
        }
        let tcpdump = try NamespacedProcess.run(["tcpdump", "-nn", "-r", path])
        #expect(tcpdump.status == 0)
        let lines = tcpdump.output.split(separator: "\n").filter { $0.contains("ICMP echo request") }
        #expect(lines.count == 37)
        #expect(lines.last?.contains("10.0.0.1 > 10.0.0.2: ICMP echo request, id 99, seq 36") == true)
    }

    @Test func unreadableFileIsAClearError() {
        #expect(throws: HostNetError.self) { try PcapReader(path: "/nonexistent/x.pcap") }
        #expect(throws: HostNetError.self) { try PcapWriter(path: "/nonexistent/dir/x.pcap") }
    }
}

@Suite(.enabled(if: isRoot, needsRoot))
struct LiveCaptureRootTests {
    /// A BPF filter keeps exactly the traffic it names.
    @Test func filteredCaptureInsideANamespace() throws {
        try withTestNamespace("cap") { namespace in
            let capture = try LiveCapture(interface: "lo", in: namespace, filter: "udp and dst port 9999")
            for index in 0..<5 {
                try Probe.sendUDP(Array("keep \(index)".utf8), to: IPv4Address(127, 0, 0, 1), port: 9999, from: namespace)
                try Probe.sendUDP(Array("drop \(index)".utf8), to: IPv4Address(127, 0, 0, 1), port: 9998, from: namespace)
            }
            let frames = try capture.drain(idleMilliseconds: 300, limit: 100)
            #expect(frames.count == 5)
            for frame in frames {
                try withBuffer(frame) { buffer in
                    let ip = try IPv4Packet(validating: try EthernetFrame(validating: buffer).payload)
                    let udp = try UDPDatagram(validating: ip.payload)
                    #expect(udp.destinationPort == 9999)
                    #expect(String(decoding: UnsafeRawBufferPointer(udp.payload), as: UTF8.self).hasPrefix("keep"))
                }
            }
            #expect(throws: HostNetError.self) { try LiveCapture(interface: "lo", in: namespace, filter: "not a filter (") }
        }
    }
}

func withBuffer<T>(_ bytes: [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws -> T) rethrows -> T {
    var copy = bytes
    return try copy.withUnsafeMutableBytes { try body($0) }
}
