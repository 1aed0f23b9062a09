import Synchronization

/// What to do with one incoming message.
public enum DNSOutcome: Sendable {
    /// Send these bytes back.
    case respond([UInt8])
    /// Not a name of the cluster: relay the query to the node's upstream resolvers.
    case forward(DNSQuery)
    /// Do not answer (there is nothing a client could use); counted.
    case drop(DNSDropReason)
}

/// Why a message got no answer at all.
public enum DNSDropReason: String, CaseIterable, Sendable, Codable {
    /// Shorter than a DNS header: not even an ID to answer to.
    case tooShort = "too_short"
    /// A response (QR set) sent to the server: answering could start a loop.
    case notAQuery = "not_a_query"
}

/// Counters of a resolver, safe to read from any thread.
public final class DNSStatistics: Sendable {
    public enum Counter: String, CaseIterable, Sendable {
        case queries, answered, noData = "nodata", nameErrors = "nxdomain", forwarded, truncated
        case formatErrors = "formerr", notImplemented = "notimp", badVersion = "badvers", refused
        case tooShort = "drop_too_short", notAQuery = "drop_not_a_query"
        case forwardFailures = "forward_failures"

        /// The counter's place in `allCases`.
        var position: Int {
            switch self {
            case .queries: 0
            case .answered: 1
            case .noData: 2
            case .nameErrors: 3
            case .forwarded: 4
            case .truncated: 5
            case .formatErrors: 6
            case .notImplemented: 7
            case .badVersion: 8
            case .refused: 9
            case .tooShort: 10
            case .notAQuery: 11
            case .forwardFailures: 12
            }
        }
    }

    /// One atomic per counter, in `Counter.allCases` order: every query adds to two of them,
    /// from any event loop, so no lock and no hashing on that path.
    private final class Cell: Sendable {
        let value = Atomic<UInt64>(0)
    }
    private let cells: [Cell] = Counter.allCases.map { _ in Cell() }

    public init() {}

    func add(_ counter: Counter) {
        cells[counter.position].value.wrappingAdd(1, ordering: .relaxed)
    }

    /// The current value of `counter`.
    public subscript(_ counter: Counter) -> UInt64 {
        cells[counter.position].value.load(ordering: .relaxed)
    }

    /// Every counter by name.
    public var snapshot: [String: UInt64] {
        Dictionary(uniqueKeysWithValues: Counter.allCases.map { ($0.rawValue, self[$0]) })
    }
}

/// Answers queries from the record store — the protocol logic of ServiceDNS with no I/O, so
/// that tests and the fuzzer drive it directly.
public final class DNSResolver: Sendable {
    public let store: RecordStore
    public let statistics = DNSStatistics()
    /// Advances once per multi-address answer: the offset of the rotation.
    private let rotation = Atomic<UInt64>(0)

    /// The largest UDP response Shoal sends to an EDNS client (the DNS flag day 2020 value).
    public static let maximumUDPPayload = 1232

    /// Answers NXDOMAIN itself, instead of forwarding, for the names only the swarm can hold:
    /// one label (`my-web`) and `tasks.` plus one label. A node's agent sets it, so that a
    /// removed service's name is gone at once everywhere, whether or not an upstream answers.
    public let ownsSwarmNames: Bool

    public init(store: RecordStore, ownsSwarmNames: Bool = false) {
        self.store = store
        self.ownsSwarmNames = ownsSwarmNames
    }

    /// True for `name` and `tasks.name` with `name` one label (a trailing dot allowed).
    static func isSwarmName(_ name: String) -> Bool {
        let labels = name.split(separator: ".")
        return labels.count == 1 || (labels.count == 2 && labels[0].lowercased() == "tasks")
    }

    /// Decides about one message from a client in `sandbox`; `overTCP` lifts the UDP size limit.
    public func resolve(_ message: UnsafeRawBufferPointer, sandbox: String, overTCP: Bool) -> DNSOutcome {
        guard let (id, flags) = DNSQuery.header(message) else {
            statistics.add(.tooShort)
            return .drop(.tooShort)
        }
        guard flags & 0x8000 == 0 else {
            statistics.add(.notAQuery)
            return .drop(.notAQuery)
        }
        statistics.add(.queries)
        guard (flags >> 11) & 0xF == 0 else {
            statistics.add(.notImplemented)
            return .respond(DNSResponseWriter(id: id, queryFlags: flags, code: .notImplemented, question: nil).bytes)
        }
        let query: DNSQuery
        do { query = try DNSQuery.parse(message) } catch {
            statistics.add(.formatErrors)
            return .respond(DNSResponseWriter(id: id, queryFlags: flags, code: .formatError, question: nil).bytes)
        }
        if let edns = query.edns, edns.version > 0 {
            statistics.add(.badVersion)
            var writer = DNSResponseWriter(id: id, queryFlags: flags, code: .noError, question: query.question)
            writer.addOPT(payloadSize: UInt16(Self.maximumUDPPayload), extendedCode: UInt8(DNSResponseCode.badVersion.rawValue >> 4))
            return .respond(writer.bytes)
        }
        guard query.class == 1 || query.class == 255 else {
            statistics.add(.notImplemented)
            return .respond(finish(DNSResponseWriter(id: id, queryFlags: flags, code: .notImplemented, question: query.question), query, overTCP))
        }
        if query.type == .axfr || query.type == .ixfr {
            statistics.add(.notImplemented)
            return .respond(finish(DNSResponseWriter(id: id, queryFlags: flags, code: .notImplemented, question: query.question), query, overTCP))
        }
        guard let entry = store.snapshot.lookup(query.name.text, sandbox: sandbox) else {
            if ownsSwarmNames && Self.isSwarmName(query.name.text) {
                statistics.add(.nameErrors)
                return .respond(finish(DNSResponseWriter(id: id, queryFlags: flags, code: .nameError, question: query.question), query, overTCP))
            }
            statistics.add(.forwarded)
            return .forward(query)
        }
        var writer = DNSResponseWriter(id: id, queryFlags: flags, code: .noError, question: query.question)
        let any = query.type == .any
        switch entry {
        case .addresses(let addresses) where query.type == .a || any:
            let offset = addresses.count > 1 ? Int(rotation.wrappingAdd(1, ordering: .relaxed).oldValue % UInt64(addresses.count)) : 0
            for index in 0..<addresses.count { writer.addA(addresses[(offset + index) % addresses.count]) }
        case .pointer(let target) where query.type == .ptr || any:
            writer.addName(type: .ptr, target)
        case .services(let targets) where query.type == .srv || any:
            for target in targets { writer.addSRV(priority: 0, weight: 0, port: target.port, target: target.target) }
        default:
            // The name exists here, but not with this type: NODATA, never NXDOMAIN.
            statistics.add(.noData)
            return .respond(finish(writer, query, overTCP))
        }
        statistics.add(.answered)
        return .respond(finish(writer, query, overTCP))
    }

    /// Adds the OPT record for EDNS clients and truncates what does not fit a UDP answer.
    private func finish(_ writer: DNSResponseWriter, _ query: DNSQuery, _ overTCP: Bool) -> [UInt8] {
        var writer = writer
        let limit = overTCP ? Int(UInt16.max) : min(query.edns?.payloadSize ?? 512, Self.maximumUDPPayload)
        let optLength = query.edns == nil ? 0 : 11
        if writer.bytes.count + optLength > limit {
            statistics.add(.truncated)
            writer.truncate(to: 12 + query.question.count)
        }
        if query.edns != nil { writer.addOPT(payloadSize: UInt16(Self.maximumUDPPayload)) }
        return writer.bytes
    }

    /// SERVFAIL for `query`: what a client gets when no upstream answered.
    public func serverFailure(for query: DNSQuery, overTCP: Bool) -> [UInt8] {
        statistics.add(.forwardFailures)
        return finish(DNSResponseWriter(id: query.id, queryFlags: query.flags, code: .serverFailure, question: query.question,
                                        authoritative: false), query, overTCP)
    }
}
