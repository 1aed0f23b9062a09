import Testing
import Wire

@testable import ServiceDNS

/// The resolver on crafted messages: no sockets, every branch.
@Suite struct ResolverTests {
    let resolver: DNSResolver

    init() throws {
        resolver = DNSResolver(store: try RecordStore(Fixture.records()))
    }

    func ask(_ message: [UInt8], sandbox: String = "t1", tcp: Bool = false) -> DNSOutcome {
        message.withUnsafeBytes { resolver.resolve($0, sandbox: sandbox, overTCP: tcp) }
    }

    func answer(_ message: [UInt8], sandbox: String = "t1", tcp: Bool = false) -> Fixture.Response? {
        if case .respond(let bytes) = ask(message, sandbox: sandbox, tcp: tcp) { return Fixture.decode(bytes) }
        return nil
    }

    @Test func vipTasksAndTaskNames() throws {
        let vip = try #require(answer(Fixture.query("my-web")))
        #expect(vip.code == 0 && vip.addresses == [IPv4Address(10, 0, 1, 2)] && vip.id == 0x1234)
        let tasks = try #require(answer(Fixture.query("TASKS.My-Web")))
        #expect(Set(tasks.addresses) == Set(Fixture.webTasks.map(\.address)), "names are case-insensitive")
        #expect(answer(Fixture.query("my-web.2"))?.addresses == [IPv4Address(10, 0, 1, 4)])
        #expect(answer(Fixture.query("my-web.2.t2abc"))?.addresses == [IPv4Address(10, 0, 1, 4)])
        #expect(answer(Fixture.query("my-web."))?.addresses == [IPv4Address(10, 0, 1, 2)])
    }

    @Test func dnsrrRotatesEveryAnswer() throws {
        var firsts = Set<IPv4Address>()
        for _ in 0..<3 {
            let response = try #require(answer(Fixture.query("my-rr")))
            #expect(Set(response.addresses) == Set(Fixture.rrTasks.map(\.address)))
            firsts.insert(response.addresses[0])
        }
        #expect(firsts.count == 3, "each of three answers starts with another task")
    }

    @Test func eachCounterHasItsOwnCell() {
        #expect(DNSStatistics.Counter.allCases.enumerated().allSatisfy { $0.offset == $0.element.position })
        let statistics = DNSStatistics()
        for (index, counter) in DNSStatistics.Counter.allCases.enumerated() {
            for _ in 0...index { statistics.add(counter) }
        }
        #expect(DNSStatistics.Counter.allCases.enumerated().allSatisfy { statistics[$0.element] == UInt64($0.offset + 1) })
    }

    @Test func existingNameWithoutTheTypeIsNoData() throws {
        for type: UInt16 in [28, 15, 16, 33] {  // AAAA, MX, TXT, SRV on a plain name
            let response = try #require(answer(Fixture.query("my-web", type: type)))
            #expect(response.code == 0 && response.answerCount == 0, "type \(type)")
        }
        #expect(resolver.statistics[.noData] == 4)
    }

    @Test func pointersAndServices() throws {
        guard case .respond(let ptr) = ask(Fixture.query("3.1.0.10.in-addr.arpa", type: 12)) else { Issue.record("no answer"); return }
        #expect(Fixture.decode(ptr).answerCount == 1)
        #expect(ptr.count > 40 && String(decoding: ptr, as: UTF8.self).contains("t1abc"))
        guard case .respond(let srv) = ask(Fixture.query("_http._tcp.my-web", type: 33)) else { Issue.record("no answer"); return }
        #expect(Fixture.decode(srv).answerCount == 1)
    }

    @Test func aNodesResolverOwnsSingleLabelAndTasksNames() throws {
        let owning = DNSResolver(store: resolver.store, ownsSwarmNames: true)
        func ask(_ name: String) -> DNSOutcome { Fixture.query(name).withUnsafeBytes { owning.resolve($0, sandbox: "t1", overTCP: false) } }
        for name in ["gone", "tasks.gone", "Gone."] {
            guard case .respond(let bytes) = ask(name) else { Issue.record("\(name) forwarded"); continue }
            #expect(Fixture.decode(bytes).code == 3, "\(name): NXDOMAIN")
        }
        #expect(owning.statistics[.nameErrors] == 3)
        guard case .forward = ask("example.org") else { Issue.record("example.org not forwarded"); return }
        guard case .respond(let known) = ask("my-web") else { Issue.record("my-web not answered"); return }
        #expect(Fixture.decode(known).addresses == [IPv4Address(10, 0, 1, 2)])
    }

    @Test func unknownAndInvisibleNamesAreForwarded() {
        guard case .forward(let query) = ask(Fixture.query("example.org")) else { Issue.record("not forwarded"); return }
        #expect(query.name.text == "example.org")
        guard case .forward = ask(Fixture.query("only-back")) else { Issue.record("t1 sees a back-only service"); return }
        #expect(answer(Fixture.query("only-back"), sandbox: "t2")?.addresses == [IPv4Address(10, 0, 9, 2)])
        guard case .forward = ask(Fixture.query("my-web"), sandbox: "t2") else { Issue.record("t2 sees a front service"); return }
    }

    @Test func largeAnswersTruncateOverUDPAndNotOverTCP() throws {
        let udp = try #require(answer(Fixture.query("tasks.big")))
        #expect(udp.truncated && udp.answerCount == 0)
        let edns = try #require(answer(Fixture.query("tasks.big", edns: (4096, 0))))
        #expect(edns.truncated && edns.hasOPT, "1232 bytes is the most Shoal sends over UDP")
        let tcp = try #require(answer(Fixture.query("tasks.big"), tcp: true))
        #expect(!tcp.truncated && tcp.answerCount == 200)
        let small = try #require(answer(Fixture.query("my-web", edns: (1232, 0))))
        #expect(small.hasOPT && !small.truncated)
    }

    @Test func badMessages() throws {
        #expect({ if case .drop(.tooShort) = ask([1, 2, 3]) { true } else { false } }())
        #expect({ if case .drop(.notAQuery) = ask(Fixture.query("my-web", flags: 0x8100)) { true } else { false } }())
        #expect(answer(Fixture.query("my-web", flags: 0x1100))?.code == 4, "opcode 2 (status) is NOTIMP")
        #expect(answer(Fixture.query("x", type: 252))?.code == 4, "AXFR is NOTIMP")
        var noQuestion = Fixture.query("my-web")
        noQuestion[5] = 0
        #expect(answer(noQuestion)?.code == 1)
        var twoQuestions = Fixture.query("my-web")
        twoQuestions[5] = 2
        #expect(answer(twoQuestions)?.code == 1)
        var tooMany = Fixture.query("my-web")
        tooMany[11] = 200
        #expect(answer(tooMany)?.code == 1, "counts larger than the packet")
        let loop: [UInt8] = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]
        #expect(answer(loop)?.code == 1, "a pointer to itself")
        let forward: [UInt8] = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 20, 0, 1, 0, 1, 0, 0, 0]
        #expect(answer(forward)?.code == 1, "a pointer forward")
        let longLabel: [UInt8] = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64] + [UInt8](repeating: 97, count: 64) + [0, 0, 1, 0, 1]
        #expect(answer(longLabel)?.code == 1, "label of 64")
        let longName = Fixture.query(Array(repeating: String(repeating: "a", count: 63), count: 5).joined(separator: "."))
        #expect(answer(longName)?.code == 1, "name over 255")
        var trailing = Fixture.query("my-web")
        trailing += [0, 0]
        #expect(answer(trailing)?.code == 1, "bytes after the last section")
        let badVersion = try #require(answer(Fixture.query("my-web", edns: (1232, 1))))
        #expect(badVersion.hasOPT && badVersion.extendedCode == 1, "EDNS version 1 is BADVERS")
        #expect(resolver.statistics[.formatErrors] == 8)
    }

    @Test func snapshotsReplaceEverything() throws {
        try resolver.store.replace(with: Fixture.records(webMode: .dnsrr))
        let rr = try #require(answer(Fixture.query("my-web")))
        #expect(Set(rr.addresses) == Set(Fixture.webTasks.map(\.address)))
        guard case .forward = ask(Fixture.query("2.1.0.10.in-addr.arpa", type: 12)) else {
            Issue.record("the VIP's PTR survived the switch to dnsrr"); return
        }
        try resolver.store.replace(with: Fixture.records(webMode: .vip))
        #expect(answer(Fixture.query("my-web"))?.addresses == [IPv4Address(10, 0, 1, 2)])
        #expect(throws: DNSRecordsError.self) {
            try resolver.store.replace(with: DNSRecords(networks: ["x": [ServiceRecord(name: "v", mode: .vip)]]))
        }
        #expect(answer(Fixture.query("my-web"))?.addresses == [IPv4Address(10, 0, 1, 2)], "a refused snapshot changes nothing")
    }
}

/// Readers never see half an update: while one thread switches `my-web` between vip and dnsrr
/// a thousand times, every answer another thread gets is wholly one or wholly the other.
@Suite struct SnapshotAtomicityTests {
    @Test func answersDuringReplacesAreNeverMixed() async throws {
        let resolver = DNSResolver(store: try RecordStore(Fixture.records()))
        let vip: Set<IPv4Address> = [IPv4Address(10, 0, 1, 2)]
        let tasks = Set(Fixture.webTasks.map(\.address))
        let query = Fixture.query("my-web")
        try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                for round in 0..<1000 { try resolver.store.replace(with: Fixture.records(webMode: round % 2 == 0 ? .dnsrr : .vip)) }
                return 0
            }
            group.addTask {
                var mixed = 0
                for _ in 0..<5000 {
                    guard case .respond(let bytes) = query.withUnsafeBytes({ resolver.resolve($0, sandbox: "t1", overTCP: false) })
                    else { mixed += 1; continue }
                    let answer = Set(Fixture.decode(bytes).addresses)
                    if answer != vip && answer != tasks { mixed += 1 }
                }
                return mixed
            }
            var mixed = 0
            for try await count in group { mixed += count }
            #expect(mixed == 0)
        }
    }
}
