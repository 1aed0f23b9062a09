// A change to a node's spec as a client means it: "add this label", "drain it", "promote it" —
// applied to the spec as it is when written. A node has writers besides its operator (the
// managers write its status on every session and leadership change), so a version conflict
// re-reads it and applies the change again rather than failing the operator's command.

import GRPCCore

extension APIConnection {
    /// Reads node `reference` (ID, prefix or hostname), applies `change` to its spec and writes
    /// it with the version read; on a version conflict, again on what it has become (at most
    /// `attempts` times, the last conflict thrown). Returns the node as written.
    public func changeNodeSpec(
        _ reference: String, options: CallOptions, attempts: Int = 3, _ change: (inout Shoal_Api_NodeSpec) -> Void
    ) async throws -> Shoal_Api_Node {
        var attempt = 1
        // Bounded: `attempts` reads and writes.
        while true {
            var get = Shoal_Api_GetNodeRequest()
            get.nodeID = reference
            let current = try await control.getNode(get, options: options).node
            var update = Shoal_Api_UpdateNodeRequest()
            update.nodeID = current.id
            update.nodeVersion = current.meta.version
            update.spec = current.spec
            change(&update.spec)
            do {
                return try await control.updateNode(update, options: options).node
            } catch where APIError(error).reason == .versionConflict && attempt < attempts {
                attempt += 1
            }
        }
    }
}
