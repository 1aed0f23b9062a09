import DurableFiles
import Glibc

/// A failed host operation: what was attempted, on which object, and the errno the kernel (or
/// libpcap's message) gave back — the same type as the file primitives' errors.
public typealias HostNetError = SystemCallError

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
