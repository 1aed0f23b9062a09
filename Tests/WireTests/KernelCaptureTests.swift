import Testing
import Wire

/// Every layer parsed from bytes the Linux kernel's own vxlan device put on the wire.
@Suite struct KernelCaptureTests {
    struct Tally {
        var arpRequests = 0, arpReplies = 0, echoRequests = 0, echoReplies = 0, tcp = 0, udp = 0, other = 0
        var tcpPayload: [UInt8] = []
        var udpPayload: [UInt8] = []
        var sawSYN = false, sawFIN = false
    }

    @Test func everyFrameDecodesWithValidChecksums() throws {
        let frames = try kernelVXLANFrames()
        #expect(frames.count >= 20)
        var tally = Tally()
        for frame in frames {
            try withBuffer(frame) { buffer in
                let outer = try EthernetFrame(validating: buffer)
                #expect(outer.etherType == .ipv4)
                let ip = try IPv4Packet(validating: outer.payload)
                #expect(ip.isHeaderChecksumValid)
                #expect(ip.protocol == .udp)
                #expect(!ip.isFragment)
                #expect(IPv4Prefix("192.0.2.0/24")!.contains(ip.source))
                let udp = try UDPDatagram(validating: ip.payload)
                #expect(udp.destinationPort == VXLANPacket.port)
                #expect(udp.isChecksumValid(source: ip.source, destination: ip.destination))
                #expect(udp.checksum != 0, "this kernel sends outer UDP checksums")
                let vxlan = try VXLANPacket(validating: udp.payload)
                #expect(vxlan.vni == VNI(42))
                let inner = try EthernetFrame(validating: vxlan.payload)
                try tallyInner(inner, into: &tally)
            }
        }
        #expect(tally.arpRequests >= 1 && tally.arpReplies >= 1)
        #expect(tally.echoRequests == 2 && tally.echoReplies == 2)
        #expect(tally.sawSYN && tally.sawFIN)
        #expect(String(decoding: tally.tcpPayload, as: UTF8.self).contains("hello shoal"))
        #expect(String(decoding: tally.tcpPayload, as: UTF8.self).contains("HELLO SHOAL"))
        #expect(tally.udpPayload == Array("datagram".utf8))
    }

    private func tallyInner(_ inner: EthernetFrame, into tally: inout Tally) throws {
        switch inner.etherType {
        case .arp:
            let arp = try ARPPacket(validating: inner.payload)
            #expect(arp.senderMAC == MACAddress.derived(from: arp.senderIP))
            if arp.operation == .request {
                tally.arpRequests += 1
                #expect(inner.destination == .broadcast)
            } else {
                #expect(arp.operation == .reply)
                tally.arpReplies += 1
                #expect(inner.destination == arp.targetMAC)
            }
        case .ipv4:
            let ip = try IPv4Packet(validating: inner.payload)
            #expect(ip.isHeaderChecksumValid)
            #expect(inner.source == MACAddress.derived(from: ip.source))
            switch ip.protocol {
            case .icmp:
                let icmp = try ICMPMessage(validating: ip.payload)
                #expect(icmp.isChecksumValid)
                if icmp.type == .echoRequest { tally.echoRequests += 1 }
                if icmp.type == .echoReply { tally.echoReplies += 1 }
            case .tcp:
                let tcp = try TCPSegment(validating: ip.payload)
                #expect(tcp.isChecksumValid(source: ip.source, destination: ip.destination))
                tally.tcp += 1
                if tcp.flags.contains(.syn) {
                    tally.sawSYN = true
                    #expect(tcp.optionsLength > 0, "a SYN carries MSS and friends")
                }
                if tcp.flags.contains(.fin) { tally.sawFIN = true }
                tally.tcpPayload += Array(UnsafeRawBufferPointer(tcp.payload))
            case .udp:
                let udp = try UDPDatagram(validating: ip.payload)
                #expect(udp.isChecksumValid(source: ip.source, destination: ip.destination))
                tally.udp += 1
                tally.udpPayload += Array(UnsafeRawBufferPointer(udp.payload))
            default:
                tally.other += 1
            }
        default:
            tally.other += 1  // IPv6 neighbour discovery and MLD
        }
    }

    /// Rebuilding a captured frame with the builders gives back the captured bytes.
    @Test func buildersReproduceCapturedHeaders() throws {
        for frame in try kernelVXLANFrames() {
            var rebuilt = [UInt8](repeating: 0, count: frame.count)
            try withBuffer(frame) { original in
                let outer = try EthernetFrame(validating: original)
                let ip = try IPv4Packet(validating: outer.payload)
                let udp = try UDPDatagram(validating: ip.payload)
                let vxlan = try VXLANPacket(validating: udp.payload)
                try rebuilt.withUnsafeMutableBytes { target in
                    let ethernet = try EthernetFrame.build(
                        in: target, destination: outer.destination, source: outer.source, etherType: outer.etherType)
                    // The inner frame is copied; every header in front of it is built.
                    let innerStart = frame.count - vxlan.payload.count
                    target.slice(innerStart, frame.count).copyMemory(from: UnsafeRawBufferPointer(vxlan.payload))
                    let builtIP = try IPv4Packet.build(
                        in: ethernet.payload, totalLength: ip.totalLength, protocol: .udp, source: ip.source,
                        destination: ip.destination, timeToLive: ip.timeToLive, identification: ip.identification,
                        dontFragment: ip.dontFragment, typeOfService: ip.typeOfService)
                    let builtUDP = try UDPDatagram.build(
                        in: builtIP.payload, sourcePort: udp.sourcePort, destinationPort: udp.destinationPort,
                        payloadLength: udp.length - UDPDatagram.headerLength)
                    _ = try VXLANPacket.build(in: builtUDP.payload, vni: vxlan.vni)
                    builtUDP.updateChecksum(source: ip.source, destination: ip.destination)
                }
            }
            #expect(rebuilt == frame)
        }
    }

    /// Every prefix of every captured frame either parses or throws; none reads out of bounds
    /// (the address sanitizer run of the fuzz target checks the same on random bytes).
    @Test func everyTruncationIsATypedError() throws {
        for frame in try kernelVXLANFrames() {
            for length in 0..<frame.count {
                let error = parseError(Array(frame[0..<length])) { buffer throws(WireError) in
                    let outer = try EthernetFrame(validating: buffer)
                    let ip = try IPv4Packet(validating: outer.payload)
                    _ = try UDPDatagram(validating: ip.payload)
                }
                if length < 14 + 20 + 8 + 8 + 14 {
                    guard case .truncated = error else {
                        Issue.record("length \(length): expected truncated, got \(String(describing: error))")
                        return
                    }
                } else if case .truncated(let layer, _, _) = error {
                    // The outer IPv4 length covers the whole frame, so any cut is caught there.
                    #expect(layer == .ipv4)
                }
            }
        }
    }
}
