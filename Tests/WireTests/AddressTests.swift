import Testing
import Wire

@Suite struct AddressTests {
    @Test func ipv4Text() {
        #expect(IPv4Address("10.0.0.1")?.rawValue == 0x0A00_0001)
        #expect(IPv4Address("255.255.255.255")?.description == "255.255.255.255")
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.-1", "a.b.c.d", "1..2.3", "01234.1.1.1", " 1.2.3.4"] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
    }

    @Test func prefixes() throws {
        let prefix = try #require(IPv4Prefix("10.10.19.7/24"))
        #expect(prefix.network == IPv4Address(10, 10, 19, 0))
        #expect(prefix.broadcast == IPv4Address(10, 10, 19, 255))
        #expect(prefix.contains(IPv4Address(10, 10, 19, 200)))
        #expect(!prefix.contains(IPv4Address(10, 10, 20, 1)))
        #expect(IPv4Prefix("0.0.0.0/0")!.contains(IPv4Address(8, 8, 8, 8)))
        #expect(IPv4Prefix("10.0.0.0/33") == nil)
        #expect(IPv4Prefix("10.0.0.0") == nil)
    }

    @Test func macs() {
        let mac = MACAddress.derived(from: IPv4Address(10, 0, 0, 2))
        #expect(mac.description == "02:42:0a:00:00:02")
        #expect(MACAddress("02:42:0A:00:00:02") == mac)
        #expect(!mac.isMulticast && MACAddress.broadcast.isMulticast)
        #expect(MACAddress("02:42:0a:00:00") == nil)
        #expect(MACAddress("02:42:0a:00:00:zz") == nil)
    }
}
