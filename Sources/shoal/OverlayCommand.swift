import ArgumentParser
import Dispatch
import Foundation
import HostNet
import Logging
import NIOCore
import NIOPosix
import Overlay
import Wire

/// The overlay daemon's configuration file: the node's underlay address plus its topology
/// (DESIGN.md §7). Until the agent programs the engine, this file is how it is told.
///
/// ```json
/// { "underlay": "192.0.2.11", "networks": [{"name": "blue", "vni": 4097, "subnet": "10.20.0.0/24"}],
///   "local": [{"network": "blue", "address": "10.20.0.2", "namespace": "web1"}],
///   "remote": [{"network": "blue", "address": "10.20.0.3", "vtep": "192.0.2.12"}] }
/// ```
struct OverlayConfiguration: Codable {
    var underlay: IPv4Address
    var port: UInt16 = VXLANPacket.port
    var mtu: Int = 1450
    var topology: Topology

    init(underlay: IPv4Address, port: UInt16 = VXLANPacket.port, mtu: Int = 1450, topology: Topology) {
        self.underlay = underlay
        self.port = port
        self.mtu = mtu
        self.topology = topology
    }

    enum CodingKeys: String, CodingKey { case underlay, port, mtu }

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        underlay = try container.decode(IPv4Address.self, forKey: .underlay)
        port = try container.decodeIfPresent(UInt16.self, forKey: .port) ?? VXLANPacket.port
        mtu = try container.decodeIfPresent(Int.self, forKey: .mtu) ?? 1450
        topology = try Topology(from: decoder)
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(underlay, forKey: .underlay)
        try container.encode(port, forKey: .port)
        try container.encode(mtu, forKey: .mtu)
        try topology.encode(to: encoder)
    }

    static func load(_ path: String) throws -> OverlayConfiguration {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ValidationError("cannot read \(path): \(error.localizedDescription)")
        }
        do { return try JSONDecoder().decode(OverlayConfiguration.self, from: data) } catch {
            throw ValidationError("\(path) is not a valid overlay configuration: \(describe(error))")
        }
    }

    /// One line for a JSON decoding error: which key, what was wrong.
    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context), DecodingError.typeMismatch(_, let context),
            DecodingError.valueNotFound(_, let context), DecodingError.keyNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return (path.isEmpty ? "" : "\(path): ") + context.debugDescription
        default:
            return "\(error)"
        }
    }

    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

/// The default control socket of the overlay daemon.
let defaultOverlayControl = "/run/shoal/overlay.sock"

struct OverlayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overlay",
        abstract: "Run and inspect the overlay data plane (a userspace VXLAN VTEP).",
        subcommands: [Run.self, Stats.self, Apply.self])

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the VTEP of this node from a configuration file (SIGHUP reloads it).")

        @Option(help: "The JSON configuration: underlay address, networks, local and remote endpoints.")
        var config: String

        @Option(help: "The control socket for 'overlay stats', 'overlay apply' and 'capture'.")
        var control: String = defaultOverlayControl

        @Flag(help: "Take one datagram per receive slot instead of UDP GRO's coalesced buffers (to measure the difference).")
        var noUdpGro = false

        @Flag(help: "Send segments as separate datagrams (sendmmsg) instead of one UDP GSO call per super-frame (to measure the difference).")
        var noUdpGso = false

        @Option(help: "Packet threads: 1 for both directions, 2 for one per direction (the default with 2+ cores).")
        var threads: Int = OverlayEngine.Configuration.defaultThreads

        func validate() throws {
            guard (1...2).contains(threads) else { throw ValidationError("--threads must be 1 or 2, not \(threads)") }
        }

        func run() throws {
            try requireRoot()
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            let logger = Logger(label: "shoal.overlay.daemon")
            let configuration = try OverlayConfiguration.load(config)
            let engine = try OverlayEngine(
                configuration: .init(
                    underlayAddress: configuration.underlay, port: configuration.port, mtu: configuration.mtu,
                    receiveOffload: !noUdpGro, sendOffload: !noUdpGso, threads: threads))
            do { try engine.apply(configuration.topology) } catch {
                throw ValidationError("\(config): \(error)")
            }
            engine.start()
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let configPath = config
            let server = try ControlChannel.serve(at: control, group: group) { request in
                OverlayDaemon.handle(request, engine: engine, configPath: configPath)
            }
            logger.info("overlay daemon ready", metadata: ["config": "\(config)", "control": "\(control)"])

            waitForTermination {
                let result = OverlayDaemon.handle(.init(command: .apply, configPath: configPath), engine: engine, configPath: configPath)
                logger.info("reloaded configuration", metadata: ["ok": "\(result.ok)", "error": "\(result.error ?? "")"])
            }
            logger.info("overlay daemon stopping")
            try? server.close().wait()
            try? group.syncShutdownGracefully()
            engine.stop()
            unlink(control)
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the counters of a running overlay daemon.")

        @Option(help: "The daemon's control socket.")
        var control: String = defaultOverlayControl

        @Flag(help: "Print the Prometheus text exposition instead of a table.")
        var prometheus = false

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            let response = try ControlChannel.send(.init(command: prometheus ? .metrics : .statistics), to: control, timeout: 5)
            guard response.ok else { throw ControlError.refused(response.error ?? "the daemon refused") }
            if prometheus {
                print(response.text ?? "", terminator: "")
                return
            }
            let statistics = try JSONDecoder().decode(OverlayStatistics.self, from: Data((response.json ?? "").utf8))
            if json {
                print(response.json ?? "")
                return
            }
            print(OverlayDaemon.table(statistics))
        }
    }

    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a running daemon serve a new configuration (only the differences are applied).")

        @Option(help: "The JSON configuration to apply.")
        var config: String

        @Option(help: "The daemon's control socket.")
        var control: String = defaultOverlayControl

        func run() throws {
            let path = URL(fileURLWithPath: config).path
            _ = try OverlayConfiguration.load(path)
            let response = try ControlChannel.send(.init(command: .apply, configPath: path), to: control, timeout: 30)
            guard response.ok else { throw ControlError.refused(response.error ?? "the daemon refused") }
            print("applied \(path)")
        }
    }
}

struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Capture the decapsulated frames of one overlay network from a running daemon.")

    @Option(help: "The overlay network to capture.")
    var network: String

    @Option(name: .customShort("w"), help: "Write a pcap file (tcpdump -r, Wireshark) instead of printing frames.")
    var write: String?

    @Option(help: "Stop after this many frames.")
    var count: Int = 100

    @Option(help: "Stop after this many seconds.")
    var duration: Double = 10

    @Option(help: "The daemon's control socket.")
    var control: String = defaultOverlayControl

    func validate() throws {
        guard count > 0 else { throw ValidationError("--count must be positive") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be in (0, 3600] seconds") }
    }

    func run() throws {
        let path = write.map { URL(fileURLWithPath: $0).path }
            ?? NSTemporaryDirectory() + "shoal-capture-\(getpid()).pcap"
        defer { if write == nil { unlink(path) } }
        let request = ControlChannel.Request(command: .capture, network: network, pcapPath: path, count: count, seconds: duration)
        let response = try ControlChannel.send(request, to: control, timeout: duration + 10)
        guard response.ok else { throw ControlError.refused(response.error ?? "the daemon refused") }
        if write != nil {
            print("\(response.count ?? 0) frames of network \(network) written to \(path)")
            return
        }
        for frame in try PcapReader(path: path).readAll() {
            print(FrameSummary.describe(frame.bytes))
        }
    }
}

/// What the daemon does for each control request.
enum OverlayDaemon {
    static func handle(_ request: ControlChannel.Request, engine: OverlayEngine, configPath: String) -> ControlChannel.Response {
        do {
            switch request.command {
            case .statistics:
                let data = try JSONEncoder().encode(engine.statistics())
                return .init(ok: true, json: String(decoding: data, as: UTF8.self))
            case .metrics:
                return .init(ok: true, text: engine.statistics().prometheusText)
            case .topology:
                let data = try JSONEncoder().encode(engine.topology)
                return .init(ok: true, json: String(decoding: data, as: UTF8.self))
            case .apply:
                let configuration = try OverlayConfiguration.load(request.configPath ?? configPath)
                guard configuration.underlay == engine.configuration.underlayAddress, configuration.port == engine.configuration.port
                else { return .failure("the underlay address and port cannot change while the daemon runs; restart it") }
                try engine.apply(configuration.topology)
                return .init(ok: true)
            case .capture:
                guard let network = request.network, let path = request.pcapPath else {
                    return .failure("capture needs a network and a pcap path")
                }
                let writer = try PcapWriter(path: path)
                let written = try engine.capture(
                    network: network, into: writer, count: request.count ?? 100, seconds: request.seconds ?? 10)
                try writer.close()
                return .init(ok: true, count: written)
            }
        } catch let error as ValidationError {
            return .failure(error.message)
        } catch {
            return .failure("\(error)")
        }
    }

    static func table(_ statistics: OverlayStatistics) -> String {
        var lines = ["NETWORK          VNI       FROM-EP     TO-EP   VXLAN-RX   VXLAN-TX   ARP   DROPS"]
        for network in statistics.networks {
            let row = [
                network.name.padding(toLength: 12, withPad: " ", startingAt: 0),
                String(network.vni), String(network.framesFromEndpoints), String(network.framesToEndpoints),
                String(network.datagramsReceived), String(network.datagramsSent), String(network.arpAnswered),
                String(network.totalDrops),
            ]
            lines.append(zip(row, [12, 8, 12, 10, 11, 11, 6, 8]).map { text, width in
                text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
            }.joined(separator: " "))
            for (reason, count) in network.drops.sorted(by: { $0.key < $1.key }) {
                lines.append("    dropped \(reason): \(count)")
            }
        }
        for (reason, count) in statistics.unattributedDrops.sorted(by: { $0.key < $1.key }) {
            lines.append("(no network) dropped \(reason): \(count)")
        }
        return lines.joined(separator: "\n")
    }
}

/// One line per frame, tcpdump-style, for `shoal capture` without `-w`.
enum FrameSummary {
    static func describe(_ bytes: [UInt8]) -> String {
        var copy = bytes
        return copy.withUnsafeMutableBytes { buffer in
            guard let frame = try? EthernetFrame(validating: buffer) else { return "short frame (\(bytes.count) bytes)" }
            let link = "\(frame.source) > \(frame.destination)"
            switch frame.etherType {
            case .arp:
                guard let arp = try? ARPPacket(validating: frame.payload) else { return "\(link) ARP (malformed)" }
                return arp.operation == .request
                    ? "\(link) ARP who-has \(arp.targetIP) tell \(arp.senderIP)"
                    : "\(link) ARP \(arp.senderIP) is-at \(arp.senderMAC)"
            case .ipv4:
                guard let ip = try? IPv4Packet(validating: frame.payload) else { return "\(link) IPv4 (malformed)" }
                let hosts = "\(ip.source) > \(ip.destination)"
                switch ip.protocol {
                case .icmp:
                    guard let icmp = try? ICMPMessage(validating: ip.payload) else { return "\(hosts) ICMP (malformed)" }
                    let kind = icmp.type == .echoRequest ? "echo request" : icmp.type == .echoReply ? "echo reply" : "type \(icmp.type.rawValue)"
                    return "\(hosts) ICMP \(kind) id \(icmp.identifier) seq \(icmp.sequenceNumber)"
                case .tcp:
                    guard let tcp = try? TCPSegment(validating: ip.payload) else { return "\(hosts) TCP (malformed)" }
                    return "\(ip.source):\(tcp.sourcePort) > \(ip.destination):\(tcp.destinationPort) TCP flags 0x\(String(tcp.flags.rawValue, radix: 16)) length \(tcp.payload.count)"
                case .udp:
                    guard let udp = try? UDPDatagram(validating: ip.payload) else { return "\(hosts) UDP (malformed)" }
                    return "\(ip.source):\(udp.sourcePort) > \(ip.destination):\(udp.destinationPort) UDP length \(udp.payload.count)"
                default:
                    return "\(hosts) protocol \(ip.protocol.rawValue) length \(ip.payload.count)"
                }
            default:
                return "\(link) ethertype \(frame.etherType) length \(bytes.count)"
            }
        }
    }
}
