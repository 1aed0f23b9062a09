// The data-plane keys the leader makes and rotates (swarmkit's keymanager): the gossip key all
// nodes seal their 7946 traffic with. A new key every rotation interval (12 h unless the
// cluster says otherwise), with the Lamport clock bumped so the newest is primary everywhere;
// the last three are kept, so a node that has not heard of the newest yet is still understood.
// Pure: the leader's loop commits what it returns.

import ClusterAPI
import Foundation
import SwiftProtobuf

/// Rotation of the cluster's data-plane keys.
public enum KeyRotation {
    /// swarm's rotation period.
    public static let defaultInterval: TimeInterval = 12 * 3600
    /// Keys kept per subsystem: the previous, the current and the newest.
    public static let kept = 3
    /// Bytes of a new key (AES-256-GCM).
    public static let keyBytes = 32

    /// The cluster with a new gossip key when it has none or its newest is older than the
    /// interval; nil when nothing is due.
    public static func rotated(_ cluster: Shoal_Api_Cluster, now: Date, makeKey: () -> [UInt8]) -> Shoal_Api_Cluster? {
        let interval = interval(of: cluster)
        let gossip = cluster.networkBootstrapKeys.filter { $0.subsystem == .gossip }
        if let newest = gossip.max(by: { $0.lamportTime < $1.lamportTime }), now.timeIntervalSince(newest.createdAt.date) < interval {
            return nil
        }
        var cluster = cluster
        cluster.encryptionKeyLamportClock += 1
        var key = Shoal_Api_EncryptionKey()
        key.subsystem = .gossip
        key.algorithm = .aesGcm
        key.key = Data(makeKey())
        key.lamportTime = cluster.encryptionKeyLamportClock
        key.createdAt = Google_Protobuf_Timestamp(date: now)
        let keptGossip = (gossip + [key]).sorted { $0.lamportTime < $1.lamportTime }.suffix(kept)
        cluster.networkBootstrapKeys = cluster.networkBootstrapKeys.filter { $0.subsystem != .gossip } + keptGossip
        return cluster
    }

    /// The cluster's rotation interval (at least a minute).
    static func interval(of cluster: Shoal_Api_Cluster) -> TimeInterval {
        cluster.spec.networkEncryption.hasKeyRotationInterval
            ? max(cluster.spec.networkEncryption.keyRotationInterval.timeInterval, 60) : defaultInterval
    }

    /// When the next gossip key is due (now, when there is none).
    static func nextRotation(of cluster: Shoal_Api_Cluster) -> Date {
        let newest = cluster.networkBootstrapKeys.filter { $0.subsystem == .gossip }.max { $0.lamportTime < $1.lamportTime }
        return newest.map { $0.createdAt.date.addingTimeInterval(interval(of: cluster)) } ?? .distantPast
    }

    /// The gossip keys of `cluster`, oldest first (the last is primary).
    public static func gossipKeys(of cluster: Shoal_Api_Cluster) -> [Shoal_Api_EncryptionKey] {
        cluster.networkBootstrapKeys.filter { $0.subsystem == .gossip }.sorted { $0.lamportTime < $1.lamportTime }
    }

    /// A key from the system's random source.
    public static func randomKey() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<keyBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}
