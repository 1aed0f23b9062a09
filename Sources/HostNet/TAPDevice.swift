import CShoal
import Glibc
import Wire

/// A TAP device (`IFF_TAP|IFF_NO_PI`, optionally `IFF_VNET_HDR`) and the file descriptor that
/// is its other end. Frames written to the descriptor arrive at the kernel's interface;
/// frames the kernel sends out of the interface are read from it.
///
/// The device is not persistent: it disappears when this object is closed or deinitialized.
/// Reads and writes may come from any thread; ``close()`` must not race with them.
public final class TAPDevice: @unchecked Sendable {
    /// The interface name the kernel gave the device.
    public let name: String
    /// The namespace the device was created in (`nil`: the creator's own).
    public let namespace: NetworkNamespace?
    /// True when every frame is preceded by a ``VirtioNetHeader``.
    public let hasVirtioNetHeader: Bool
    /// The file descriptor, or -1 once closed.
    public private(set) var descriptor: Int32

    /// Creates a TAP device called `name` inside `namespace` (the caller's when nil).
    public init(named name: String, in namespace: NetworkNamespace? = nil, virtioNetHeader: Bool = false)
        throws(HostNetError)
    {
        precondition(name.utf8.count < 16, "interface name longer than 15 bytes: \(name)")
        var finalName = [CChar](repeating: 0, count: 16)
        let open = { shoal_tap_open(name, virtioNetHeader ? 1 : 0, &finalName) }
        let result: Int32
        if let namespace {
            do { result = try namespace.run(open) } catch let error as HostNetError { throw error } catch {
                throw HostNetError("create tap", name, errno: EINVAL)
            }
        } else {
            result = open()
        }
        try check(result, "create tap", name + (namespace.map { " in \($0.name)" } ?? ""))
        descriptor = result
        self.name = String(cBuffer: finalName)
        self.namespace = namespace
        self.hasVirtioNetHeader = virtioNetHeader
    }

    deinit { close() }

    /// Closes the descriptor; the kernel removes the interface.
    public func close() {
        if descriptor >= 0 {
            Glibc.close(descriptor)
            descriptor = -1
        }
    }

    /// Sets or clears `O_NONBLOCK` on the descriptor.
    public func setNonBlocking(_ nonBlocking: Bool) throws(HostNetError) {
        let flags = try checkErrno(fcntl(descriptor, F_GETFL), "get flags", name)
        try checkErrno(
            fcntl(descriptor, F_SETFL, nonBlocking ? flags | O_NONBLOCK : flags & ~O_NONBLOCK), "set flags", name)
    }

    /// Sets the offloads the kernel may hand this device (`TUN_F_CSUM`, `TUN_F_TSO4`, …).
    public func setOffload(_ flags: UInt32) throws(HostNetError) {
        try check(shoal_tap_set_offload(descriptor, flags), "set offload", name)
    }

    /// Reads one frame into `buffer`; returns its length. Blocks unless non-blocking, where an
    /// empty device throws EAGAIN.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(HostNetError) -> Int {
        let count = Glibc.read(descriptor, buffer.baseAddress, buffer.count)
        if count < 0 { throw HostNetError("read", name, errno: errno) }
        return count
    }

    /// Writes one whole frame; the kernel takes it or fails it, never part of it.
    public func write(_ frame: UnsafeRawBufferPointer) throws(HostNetError) {
        let count = Glibc.write(descriptor, frame.baseAddress, frame.count)
        if count < 0 { throw HostNetError("write", name, errno: errno) }
    }

    /// Waits up to `timeoutMilliseconds` for a frame to be readable.
    public func waitReadable(timeoutMilliseconds: Int32) throws(HostNetError) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&entry, 1, timeoutMilliseconds)
        if ready < 0 && errno != EINTR { throw HostNetError("poll", name, errno: errno) }
        return ready > 0
    }
}
