import EngineKit
import Testing

/// The one `host:port` parser: every accepted form, and every mistake with its own error.
@Suite struct HostPortTests {
    @Test func acceptsNamesAddressesAndBracketedIPv6() throws {
        #expect(try HostPort(parsing: "192.0.2.11:2377") == HostPort(host: "192.0.2.11", port: 2377))
        #expect(try HostPort(parsing: "n1.example:7946") == HostPort(host: "n1.example", port: 7946))
        #expect(try HostPort(parsing: "[::1]:53") == HostPort(host: "::1", port: 53))
        #expect(try HostPort(parsing: "[fe80::1]", defaultPort: 53) == HostPort(host: "fe80::1", port: 53))
        #expect(try HostPort(parsing: "192.0.2.53", defaultPort: 53).port == 53)
        #expect(try HostPort(parsing: "0.0.0.0:0", allowZero: true).port == 0)
        #expect(HostPort(host: "::1", port: 53).description == "[::1]:53")
        #expect(HostPort(host: "192.0.2.1", port: 1).description == "192.0.2.1:1")
    }

    @Test func refusesEachMistakeWithItsOwnReason() {
        #expect(throws: HostPort.ParseError.missingPort("192.0.2.1")) { try HostPort(parsing: "192.0.2.1") }
        #expect(throws: HostPort.ParseError.missingHost(":2377")) { try HostPort(parsing: ":2377") }
        #expect(throws: HostPort.ParseError.invalidPort("h:0")) { try HostPort(parsing: "h:0") }
        #expect(throws: HostPort.ParseError.invalidPort("h:65536")) { try HostPort(parsing: "h:65536") }
        #expect(throws: HostPort.ParseError.invalidPort("h:x")) { try HostPort(parsing: "h:x") }
        #expect(throws: HostPort.ParseError.invalidPort("h:")) { try HostPort(parsing: "h:") }
        #expect(throws: HostPort.ParseError.malformed("::1:53")) { try HostPort(parsing: "::1:53") }
        #expect(throws: HostPort.ParseError.malformed("[::1:53")) { try HostPort(parsing: "[::1:53") }
        #expect(throws: HostPort.ParseError.malformed("[::1]53")) { try HostPort(parsing: "[::1]53") }
        #expect(throws: HostPort.ParseError.missingHost("[]:53")) { try HostPort(parsing: "[]:53") }
    }
}
