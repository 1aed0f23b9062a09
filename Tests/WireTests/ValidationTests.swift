import Testing
import Wire

/// Each header rejects the values its protocol forbids, with the error that names them.
@Suite struct ValidationTests {
    func ipv4Header(versionIHL: UInt8 = 0x45, totalLength: UInt16 = 28, flagsFragment: UInt16 = 0, count: Int = 28)
        -> [UInt8]
    {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes[0] = versionIHL
        bytes[2] = UInt8(totalLength >> 8)
        bytes[3] = UInt8(totalLength & 0xFF)
        bytes[6] = UInt8(flagsFragment >> 8)
        bytes[7] = UInt8(flagsFragment & 0xFF)
        return bytes
    }

    @Test func ipv4() {
        func parse(_ bytes: [UInt8]) -> WireError? { parseError(bytes) { b throws(WireError) in _ = try IPv4Packet(validating: b) } }
        #expect(parse(ipv4Header()) == nil)
        #expect(parse(ipv4Header(versionIHL: 0x65)) == .invalid(.ipv4, .version))
        #expect(parse(ipv4Header(versionIHL: 0x44)) == .invalid(.ipv4, .headerLength))
        #expect(parse(ipv4Header(versionIHL: 0x4F)) == .truncated(.ipv4, needed: 60, available: 28))
        #expect(parse(ipv4Header(totalLength: 19)) == .invalid(.ipv4, .totalLength))
        #expect(parse(ipv4Header(totalLength: 1500)) == .truncated(.ipv4, needed: 1500, available: 28))
        #expect(parse(Array(ipv4Header()[0..<19])) == .truncated(.ipv4, needed: 20, available: 19))
    }

    @Test func ipv4OptionsAndFragments() throws {
        var bytes = ipv4Header(versionIHL: 0x46, totalLength: 32, flagsFragment: 0x2000 | 3, count: 40)
        bytes[20] = 0x01  // NOP option
        try withBuffer(bytes) { buffer in
            let packet = try IPv4Packet(validating: buffer)
            #expect(packet.headerLength == 24)
            #expect(packet.options.count == 4)
            #expect(packet.payload.count == 8, "payload stops at total length, not at the buffer's end")
            #expect(packet.moreFragments)
            #expect(packet.fragmentOffset == 24)
            #expect(packet.isFragment)
        }
        try withBuffer(ipv4Header(flagsFragment: 0x4000)) { buffer in
            let packet = try IPv4Packet(validating: buffer)
            #expect(packet.dontFragment && !packet.isFragment)
        }
    }

    @Test func udp() {
        func parse(_ bytes: [UInt8]) -> WireError? { parseError(bytes) { b throws(WireError) in _ = try UDPDatagram(validating: b) } }
        #expect(parse([0, 1, 0, 2, 0, 8, 0, 0]) == nil)
        #expect(parse([0, 1, 0, 2, 0, 7, 0, 0]) == .invalid(.udp, .lengthField))
        #expect(parse([0, 1, 0, 2, 0, 9, 0, 0]) == .truncated(.udp, needed: 9, available: 8))
        #expect(parse([0, 1, 0, 2, 0]) == .truncated(.udp, needed: 8, available: 5))
    }

    @Test func tcp() throws {
        var bytes = [UInt8](repeating: 0, count: 32)
        bytes[12] = 0x80  // 32-byte header
        bytes[13] = TCPFlags([.syn, .ack]).rawValue
        try withBuffer(bytes) { buffer in
            let segment = try TCPSegment(validating: buffer)
            #expect(segment.optionsLength == 12)
            #expect(segment.flags == [.syn, .ack])
            #expect(segment.payload.count == 0)
        }
        bytes[12] = 0x40
        #expect(parseError(bytes) { b throws(WireError) in _ = try TCPSegment(validating: b) } == .invalid(.tcp, .dataOffset))
        bytes[12] = 0xF0
        #expect(parseError(bytes) { b throws(WireError) in _ = try TCPSegment(validating: b) } == .truncated(.tcp, needed: 60, available: 32))
    }

    @Test func vxlan() {
        func parse(_ bytes: [UInt8]) -> WireError? { parseError(bytes) { b throws(WireError) in _ = try VXLANPacket(validating: b) } }
        #expect(parse([0x08, 0, 0, 0, 0, 0, 42, 0]) == nil)
        #expect(parse([0x08, 0, 0, 0, 0, 0, 42, 0x99]) == nil, "the reserved byte after the VNI is ignored")
        #expect(parse([0x00, 0, 0, 0, 0, 0, 42, 0]) == .invalid(.vxlan, .flags))
        #expect(parse([0x0C, 0, 0, 0, 0, 0, 42, 0]) == .invalid(.vxlan, .flags))
        #expect(parse([0x08, 0, 1, 0, 0, 0, 42, 0]) == .invalid(.vxlan, .flags))
        #expect(parse([0x08, 0, 0, 0, 0, 0, 42]) == .truncated(.vxlan, needed: 8, available: 7))
    }

    @Test func vxlanRoundTrip() throws {
        var bytes = [UInt8](repeating: 0xAA, count: 8)
        try bytes.withUnsafeMutableBytes { buffer in
            let packet = try VXLANPacket.build(in: buffer, vni: VNI(0xABCDEF)!)
            #expect(packet.vni.rawValue == 0xABCDEF)
        }
        #expect(bytes == [0x08, 0, 0, 0, 0xAB, 0xCD, 0xEF, 0])
        #expect(VNI(0x100_0000) == nil)
    }

    @Test func arp() {
        func parse(_ bytes: [UInt8]) -> WireError? { parseError(bytes) { b throws(WireError) in _ = try ARPPacket(validating: b) } }
        var bytes = [UInt8](repeating: 0, count: 28)
        bytes[1] = 1; bytes[2] = 8; bytes[4] = 6; bytes[5] = 4
        #expect(parse(bytes) == nil)
        var other = bytes; other[1] = 6
        #expect(parse(other) == .invalid(.arp, .hardwareType))
        other = bytes; other[2] = 0x86; other[3] = 0xDD
        #expect(parse(other) == .invalid(.arp, .protocolType))
        other = bytes; other[5] = 16
        #expect(parse(other) == .invalid(.arp, .addressLength))
        #expect(parse(Array(bytes[0..<27])) == .truncated(.arp, needed: 28, available: 27))
    }

    @Test func icmpEcho() throws {
        var bytes = [UInt8](repeating: 0x5A, count: 8 + 56)
        try bytes.withUnsafeMutableBytes { buffer in
            let echo = try ICMPMessage.buildEcho(in: buffer, type: .echoRequest, identifier: 0x1234, sequenceNumber: 7, payloadLength: 56)
            #expect(echo.isChecksumValid)
            #expect(echo.identifier == 0x1234 && echo.sequenceNumber == 7 && echo.payload.count == 56)
        }
        #expect(parseError([8, 0, 0]) { b throws(WireError) in _ = try ICMPMessage(validating: b) } == .truncated(.icmp, needed: 8, available: 3))
    }

    @Test func virtioNetHeader() throws {
        let header = VirtioNetHeader(
            flags: .needsChecksum, gsoType: .tcpv4, headerLength: 66, gsoSize: 1398, checksumStart: 34, checksumOffset: 16)
        var bytes = [UInt8](repeating: 0, count: 10)
        try bytes.withUnsafeMutableBytes { try header.write(to: $0) }
        #expect(bytes == [1, 1, 66, 0, 0x76, 0x05, 34, 0, 16, 0])
        try bytes.withUnsafeMutableBytes { buffer throws in
            #expect(try VirtioNetHeader(parsing: buffer, frameLength: 1000) == header)
            #expect(wireError { () throws(WireError) in _ = try VirtioNetHeader(parsing: buffer, frameLength: 51) } == .invalid(.virtioNet, .checksumOffsets))
        }
        bytes[1] = 9
        #expect(parseError(bytes) { b throws(WireError) in _ = try VirtioNetHeader(parsing: b, frameLength: 1000) } == .invalid(.virtioNet, .gsoType))
        bytes[1] = 1; bytes[4] = 0; bytes[5] = 0
        #expect(parseError(bytes) { b throws(WireError) in _ = try VirtioNetHeader(parsing: b, frameLength: 1000) } == .invalid(.virtioNet, .gsoType), "GSO with size 0")
    }
}
