import CShoal
import Glibc
import HostNet
import Wire

/// The UDP side of the VTEP: one non-blocking socket on the node's underlay address and the
/// VXLAN port, read and written in batches (`recvmmsg`/`sendmmsg`), so that a burst of frames
/// costs one system call each way.
final class UnderlaySocket {
    let address: IPv4Address
    let port: UInt16
    let descriptor: Int32

    /// Binds inside `namespace` (the caller's own when nil); the socket stays there. With
    /// `receiveOffload` the kernel may hand over a sender's consecutive datagrams in one
    /// buffer (UDP GRO; see ``shoal_datagram/segment_size``).
    init(address: IPv4Address, port: UInt16, in namespace: NetworkNamespace?, receiveOffload: Bool) throws {
        self.address = address
        self.port = port
        let bind = { shoal_udp_bind(address.rawValue, port, 8 << 20, receiveOffload ? 1 : 0) }
        let result = try namespace.map { try $0.run(bind) } ?? bind()
        guard result >= 0 else {
            throw HostNetError("bind VXLAN socket", "\(address):\(port)", errno: -result)
        }
        descriptor = result
    }

    deinit { Glibc.close(descriptor) }

    /// Receives up to `count` datagrams into the buffers the descriptors point at.
    @inline(__always)
    func receive(_ datagrams: UnsafeMutablePointer<shoal_datagram>, count: Int) -> Int {
        Int(shoal_udp_receive_batch(descriptor, datagrams, Int32(count)))
    }

    /// Sends consecutive datagrams of `segmentSize` bytes, gathered from `count` vectors, in one
    /// call (UDP GSO); returns the bytes sent or a negative errno.
    @inline(__always)
    func sendSegmented(
        _ vectors: UnsafeMutablePointer<iovec>, count: Int, to address: IPv4Address, port: UInt16, segmentSize: Int
    ) -> Int {
        Int(shoal_udp_send_segmented(descriptor, vectors, Int32(count), address.rawValue, port, UInt16(segmentSize)))
    }

    /// Sends `count` datagrams; returns how many the kernel took (negative errno if none).
    @inline(__always)
    func send(_ datagrams: UnsafeMutablePointer<shoal_datagram>, count: Int) -> Int {
        Int(shoal_udp_send_batch(descriptor, datagrams, Int32(count)))
    }
}
