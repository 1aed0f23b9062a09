// The cluster's settings as swarm defaults them, and the limits `swarm init` and `swarm
// update` enforce: a certificate lives at least a minute, a heartbeat is at least 100 ms.

import ClusterAPI
import Foundation
import SwiftProtobuf

/// Defaults and limits of the cluster's settings.
public enum ClusterDefaults {
    /// Node certificates: 90 days.
    public static let certificateExpiry: TimeInterval = 90 * 24 * 3600
    /// Heartbeats: every 5 s.
    public static let heartbeatPeriod: TimeInterval = 5
    /// Task history per slot.
    public static let taskHistory: Int64 = 5

    /// The spec of a new cluster.
    public static func spec(certificateExpiry: TimeInterval?, heartbeatPeriod: TimeInterval?) -> Shoal_Api_ClusterSpec {
        var spec = Shoal_Api_ClusterSpec()
        spec.annotations.name = "default"
        spec.orchestration.taskHistoryRetentionLimit = taskHistory
        spec.dispatcher.heartbeatPeriod = Google_Protobuf_Duration(timeInterval: heartbeatPeriod ?? Self.heartbeatPeriod)
        spec.caConfig.nodeCertExpiry = Google_Protobuf_Duration(timeInterval: certificateExpiry ?? Self.certificateExpiry)
        return spec
    }

    /// Refuses settings outside their limits.
    public static func validate(_ spec: Shoal_Api_ClusterSpec) throws(APIError) {
        if spec.caConfig.hasNodeCertExpiry, spec.caConfig.nodeCertExpiry.timeInterval < 60 {
            throw APIError(
                .invalidSpec, "certificate expiry \(spec.caConfig.nodeCertExpiry.timeInterval) s is below the minimum of 1m",
                field: "ca_config.node_cert_expiry")
        }
        if spec.dispatcher.hasHeartbeatPeriod, spec.dispatcher.heartbeatPeriod.timeInterval < 0.1 {
            throw APIError(
                .invalidSpec, "heartbeat period \(spec.dispatcher.heartbeatPeriod.timeInterval) s is below the minimum of 100ms",
                field: "dispatcher.heartbeat_period")
        }
    }

    /// The certificate lifetime of `spec`.
    public static func certificateExpiry(of spec: Shoal_Api_ClusterSpec) -> TimeInterval {
        spec.caConfig.hasNodeCertExpiry ? spec.caConfig.nodeCertExpiry.timeInterval : certificateExpiry
    }

    /// The heartbeat period of `spec`.
    public static func heartbeatPeriod(of spec: Shoal_Api_ClusterSpec) -> TimeInterval {
        spec.dispatcher.hasHeartbeatPeriod ? spec.dispatcher.heartbeatPeriod.timeInterval : heartbeatPeriod
    }
}
