// Errors of the write-ahead log and snapshot files: what failed, on which path, and errno.

/// A storage failure. Any of these while saving means the member must stop: what it was about
/// to promise is not durable.
public enum StorageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A system call failed.
    case system(operation: String, path: String, errno: Int32)
    /// Stored bytes are damaged somewhere a torn write cannot explain.
    case corrupt(String)

    public var description: String {
        switch self {
        case .system(let operation, let path, let errno): "\(operation) \(path): \(String(cString: strerror(errno)))"
        case .corrupt(let what): "corrupt storage: \(what)"
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
