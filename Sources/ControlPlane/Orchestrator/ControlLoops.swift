// The leader's host loop for the control loops: it watches the store version (a local read,
// cheap) and, when it moved or a restart delay ended, reads the store linearizably — so a new
// leader never acts on entries it has not applied yet — runs one reconciliation pass and
// commits its actions as one transaction. A pass refused because another writer got there
// first is simply run again over the newer store.

import ClusterAPI
import Foundation
import Logging
import Metrics
import PKI

extension Manager {
    /// How often the loop looks at the store version.
    static let reconcilePoll: Duration = .milliseconds(50)

    /// Runs until the manager stops; acts only while it leads.
    func runControlLoops() async {
        var doneAt: UInt64?
        var wake: Date?
        var nextRotation: Date?
        let passes = Counter(label: "shoal_reconcile_passes_total")
        let refused = Counter(label: "shoal_reconcile_refused_total")
        while !liveness.isStopped && !Task.isCancelled {
            try? await Task.sleep(for: Self.reconcilePoll)
            guard await isLeader() else {
                doneAt = nil
                continue
            }
            guard let version = try? await store.readLocal({ $0.version }) else { continue }
            let due = wake.map { $0 <= Date() } ?? false
            let rotationDue = nextRotation.map { $0 <= Date() } ?? false
            guard version != doneAt || due || rotationDue else { continue }
            guard let snapshot = try? await read({ $0 }) else { continue }
            if let cluster = snapshot.clusters.sorted.first {
                if let rotated = KeyRotation.rotated(cluster, now: Date(), makeKey: KeyRotation.randomKey) {
                    do throws(APIError) {
                        _ = try await write([Shoal_Api_StoreAction(.update, rotated)])
                        logger.info("new gossip key", metadata: ["lamport": "\(rotated.encryptionKeyLamportClock)"])
                    } catch {
                        logger.debug("key rotation refused; running again", metadata: ["error": "\(error)"])
                    }
                    doneAt = nil
                    continue
                }
                nextRotation = KeyRotation.nextRotation(of: cluster)
            }
            let result = ClusterReconciler.reconcile(snapshot, now: Date(), newID: RandomID.make)
            passes.increment()
            wake = result.wake
            if result.actions.isEmpty {
                doneAt = snapshot.version
                continue
            }
            do throws(APIError) {
                let commit = try await write(result.actions)
                doneAt = nil  // Look again at what this commit made (a pass over it finds nothing more, or the next step).
                logger.debug("reconciled", metadata: ["version": "\(commit.version)", "changes": "\(result.actions.count)"])
            } catch {
                refused.increment()
                doneAt = nil
                logger.debug("reconciliation refused; running again", metadata: ["error": "\(error)"])
            }
        }
    }
}
