// The daemon's /metrics: swift-metrics throughout the code, swift-prometheus behind it, and
// a small HTTP/1 listener (SwiftNIO) that answers `GET /metrics` with the registry in
// Prometheus text. What the Raft core knows as state (term, leader, indexes) and the store's
// object counts are sampled each second; counters (API calls by method and code, proposals,
// transactions, heartbeats) and the fsync histogram are recorded where they happen.

import Agent
import ControlPlane
import Foundation
import GRPCCore
import IngressLB
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import Raft

/// The process's metrics registry and its HTTP endpoint.
public enum DaemonMetrics {
    /// Makes swift-metrics record into a new Prometheus registry; call once, before anything
    /// creates a metric.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // fsyncs and calls take microseconds to milliseconds: buckets from 50 µs to 1 s.
        factory.defaultDurationHistogramBuckets = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .seconds(1),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// Serves `GET /metrics` on `address` (host:port) until the returned channel closes.
    static func serve(_ registry: PrometheusCollectorRegistry, on host: String, port: Int) async throws -> Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(MetricsHandler(registry: registry))
                }
            }
            .bind(host: host, port: port).get()
    }

    /// Samples what is state rather than events: the Raft member's and the store's.
    static func sample(_ manager: Manager) async {
        guard let (status, _) = try? await manager.store.member.directory().get() else { return }
        Gauge(label: "shoal_raft_term").record(Int64(status.term))
        Gauge(label: "shoal_raft_leader").record(status.leader == status.id ? 1 : 0)
        Gauge(label: "shoal_raft_has_leader").record(status.leader == 0 ? 0 : 1)
        Gauge(label: "shoal_raft_commit_index").record(Int64(status.commit))
        Gauge(label: "shoal_raft_applied_index").record(Int64(status.applied))
        Gauge(label: "shoal_raft_members").record(status.membership.all.count)
        guard let counts = try? await manager.store.readLocal({ store in
            [("node", store.nodes.count), ("service", store.services.count), ("task", store.tasks.count),
             ("network", store.networks.count), ("cluster", store.clusters.count)]
        }) else { return }
        for (kind, count) in counts { Gauge(label: "shoal_store_objects", dimensions: [("kind", kind)]).record(count) }
    }

    /// Records each VIP's backends in the rotation (`shoal_vip_backends{network,service}`),
    /// and 0 for one gone since `last` (a gauge keeps its last value otherwise).
    static func sample(_ counts: [VIPBackendCount], since last: inout [VIPBackendCount]) {
        func record(_ count: VIPBackendCount, _ value: Int) {
            Gauge(label: "shoal_vip_backends", dimensions: [("network", count.network), ("service", count.service)]).record(value)
        }
        let present = Set(counts.map { "\($0.network)/\($0.service)" })
        for gone in last where !present.contains("\(gone.network)/\(gone.service)") { record(gone, 0) }
        for count in counts { record(count, count.backends) }
        last = counts
    }

    /// Records the VIP balancer's table: flows tracked now (`shoal_conntrack_entries`), and what
    /// happened since `last` (the previous sample, updated): new and expired flows, balanced
    /// and reversed frames, drops by reason.
    static func sample(_ tracker: ConnectionTracker, since last: inout ConnectionTracker.Statistics) {
        let now = tracker.statistics()
        Gauge(label: "shoal_conntrack_entries").record(now.flows)
        Gauge(label: "shoal_conntrack_capacity").record(tracker.configuration.capacity)
        func add(_ label: String, _ dimensions: [(String, String)] = [], _ value: UInt64, _ previous: UInt64) {
            if value > previous { Counter(label: label, dimensions: dimensions).increment(by: Int(value - previous)) }
        }
        add("shoal_conntrack_new_flows_total", [], now.newFlows, last.newFlows)
        add("shoal_conntrack_expired_flows_total", [], now.expiredFlows, last.expiredFlows)
        add("shoal_vip_frames_total", [("direction", "to_backend")], now.balancedFrames, last.balancedFrames)
        add("shoal_vip_frames_total", [("direction", "from_backend")], now.reversedFrames, last.reversedFrames)
        add("shoal_conntrack_drops_total", [("reason", "table_full")], now.tableFullDrops, last.tableFullDrops)
        add("shoal_conntrack_drops_total", [("reason", "untracked_flow")], now.untrackedDrops, last.untrackedDrops)
        add("shoal_conntrack_drops_total", [("reason", "no_backend")], now.noBackendDrops, last.noBackendDrops)
        add("shoal_conntrack_gone_backend_flows_total", [], now.goneBackendFlows, last.goneBackendFlows)
        last = now
    }
}

/// The last value of every cumulative counter sampled from the data plane, so each sample
/// adds only what happened since the one before.
struct DataPlaneSample {
    var counters: [String: UInt64] = [:]
    var gauges: Set<String> = []
}

extension DaemonMetrics {
    /// Records what the node's data plane counted since `last`: the overlay's families (its
    /// own names, `shoal_overlay_*`), gossip traffic and refusals (`shoal_gossip_*`), the
    /// members by status, and DNS queries by outcome (`shoal_dns_queries_total{result}`).
    static func sample(_ statistics: DataPlaneStatistics, since last: inout DataPlaneSample) {
        func count(_ name: String, _ dimensions: [(String, String)], _ value: UInt64) {
            let key = name + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
            let previous = last.counters[key] ?? 0
            // Made even at 0, so that every series exists from the first sample on.
            let counter = Counter(label: name, dimensions: dimensions)
            if value > previous { counter.increment(by: Int(value - previous)) }
            last.counters[key] = value
        }
        for family in statistics.overlay.counterFamilies {
            for (labels, value) in family.samples { count(family.name, labels, value) }
        }
        let gossip = statistics.gossip
        count("shoal_gossip_sent_datagrams_total", [], UInt64(gossip.sentDatagrams))
        count("shoal_gossip_sent_datagram_bytes_total", [], UInt64(gossip.sentDatagramBytes))
        count("shoal_gossip_sent_stream_frames_total", [], UInt64(gossip.sentStreamFrames))
        count("shoal_gossip_packets_received_total", [], UInt64(gossip.receivedPackets))
        count("shoal_gossip_probes_total", [("result", "sent")], UInt64(gossip.probes))
        count("shoal_gossip_probes_total", [("result", "failed")], UInt64(gossip.failedProbes))
        count("shoal_gossip_suspicions_total", [], UInt64(gossip.suspicionsRaised))
        count("shoal_gossip_deaths_declared_total", [], UInt64(gossip.deathsDeclared))
        count("shoal_gossip_refutations_total", [], UInt64(gossip.refutations))
        let drops = statistics.gossipDrops
        for (reason, value) in [
            ("malformed_packet", gossip.malformedPackets), ("malformed_envelope", drops.malformedEnvelopes), ("unknown_key", drops.unknownKey),
            ("authentication_failed", drops.authenticationFailures), ("replay", drops.replays), ("oversized_frame", drops.oversizedFrames),
            ("from_self", drops.fromSelf), ("truncated_frame", drops.truncatedFrames), ("misaddressed_ping", gossip.misaddressedPings),
            ("entry_outside_networks", gossip.entriesOutsideNetworks),
        ] {
            count("shoal_gossip_drops_total", [("reason", reason)], UInt64(value))
        }
        Gauge(label: "shoal_gossip_health_score").record(gossip.healthScore)
        // Every status seen once stays reported (0 when none is left in it).
        last.gauges.formUnion(statistics.gossipMembers.keys)
        for status in last.gauges {
            Gauge(label: "shoal_gossip_members", dimensions: [("status", status)]).record(statistics.gossipMembers[status] ?? 0)
        }
        for (result, value) in statistics.dns { count("shoal_dns_queries_total", [("result", result)], value) }
    }
}

/// Answers `GET /metrics`; anything else is 404.
private final class MetricsHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let registry: PrometheusCollectorRegistry

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
        let found = request.method == .GET && request.uri.split(separator: "?").first == "/metrics"
        let body = found ? registry.emitToBuffer() : Array("not found: try /metrics\n".utf8)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain")
        headers.add(name: "Content-Length", value: "\(body.count)")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: found ? .ok : .notFound, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}

/// Counts every API call by method and gRPC code (`shoal_api_requests_total`,
/// `shoal_api_errors_total`), on both listeners.
struct APIMetricsInterceptor: ServerInterceptor {
    /// Which listener: `socket` or `cluster`.
    let listener: String

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = "\(context.descriptor.service.fullyQualifiedService)/\(context.descriptor.method)"
        Counter(label: "shoal_api_requests_total", dimensions: [("listener", listener), ("method", method)]).increment()
        do {
            let response = try await next(request, context)
            if case .failure(let error) = response.accepted { count(error.code, method) }
            return response
        } catch let error as RPCError {
            count(error.code, method)
            throw error
        }
    }

    private func count(_ code: RPCError.Code, _ method: String) {
        Counter(label: "shoal_api_errors_total", dimensions: [("listener", listener), ("method", method), ("code", "\(code)")]).increment()
    }
}
