// Whether a service is global (one task per eligible node) or replicated: the one reading of
// ServiceSpec's `mode` oneof, for the managers and the CLI alike.

extension Shoal_Api_ServiceSpec {
    /// True for `--mode global`.
    public var isGlobal: Bool {
        if case .global = mode { return true }
        return false
    }
}

extension Shoal_Api_Service {
    /// True for `--mode global`.
    public var isGlobal: Bool { spec.isGlobal }
}
