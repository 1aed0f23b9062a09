import Glibc

/// A failed host operation: what was attempted, on which object, and the errno the kernel (or
/// libpcap's message) gave back.
public struct HostNetError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What was attempted, e.g. `create veth`.
    public let operation: String
    /// The object it was attempted on, e.g. `veth0 in shoal-ab12-n1`.
    public let object: String
    /// The errno, or 0 when the failure did not come with one.
    public let errno: Int32
    /// Extra text from a library (libpcap's error buffer), if any.
    public let detail: String

    public init(_ operation: String, _ object: String, errno: Int32, detail: String = "") {
        self.operation = operation
        self.object = object
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        var text = "\(operation) \(object): "
        if errno != 0 { text += String(cString: strerror(errno)) + " (errno \(errno))" }
        if !detail.isEmpty { text += (errno != 0 ? ": " : "") + detail }
        return text
    }
}

/// Turns a C shim's `-errno` return convention into a thrown ``HostNetError``.
@discardableResult
func check(_ result: Int32, _ operation: String, _ object: String) throws(HostNetError) -> Int32 {
    if result < 0 { throw HostNetError(operation, object, errno: -result) }
    return result
}

/// Turns libc's `-1 and errno` convention into a thrown ``HostNetError``.
@discardableResult
func checkErrno(_ result: Int32, _ operation: String, _ object: String) throws(HostNetError) -> Int32 {
    if result < 0 { throw HostNetError(operation, object, errno: Glibc.errno) }
    return result
}

extension String {
    /// Decodes a NUL-terminated C character buffer (an errbuf or an ifreq name).
    init(cBuffer: [CChar]) {
        self = String(decoding: cBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
