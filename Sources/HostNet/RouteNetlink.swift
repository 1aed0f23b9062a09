import CLibMnl
import Glibc
import Wire

/// An rtnetlink socket (libmnl) bound in one network namespace: the Swift API for links,
/// addresses, routes and neighbours of that namespace. No shelling out to `ip`.
///
/// Not thread-safe: one socket per thread of use. Every request waits for the kernel's ACK, so
/// a method that returns has taken effect.
public final class RouteNetlink {
    /// Where the socket lives, for error messages (`nil`: the caller's namespace).
    public let namespace: NetworkNamespace?
    private let socket: OpaquePointer
    private let portID: UInt32
    private var sequence: UInt32
    private var buffer: UnsafeMutableRawBufferPointer

    /// Opens a socket in the calling thread's current namespace.
    public convenience init() throws(HostNetError) {
        try self.init(openedIn: nil)
    }

    /// Opens a socket inside `namespace`; it keeps operating there from any thread.
    public convenience init(in namespace: NetworkNamespace) throws(HostNetError) {
        try self.init(openedIn: namespace)
    }

    private init(openedIn namespace: NetworkNamespace?) throws(HostNetError) {
        self.namespace = namespace
        let where_ = namespace?.name ?? "current namespace"
        let opened: OpaquePointer?
        if let namespace {
            do { opened = try namespace.run { mnl_socket_open(NETLINK_ROUTE) } } catch let error as HostNetError {
                throw error
            } catch { throw HostNetError("open netlink", where_, errno: EINVAL) }
        } else {
            opened = mnl_socket_open(NETLINK_ROUTE)
        }
        guard let opened else { throw HostNetError("open netlink", where_, errno: errno) }
        guard mnl_socket_bind(opened, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let code = errno
            mnl_socket_close(opened)
            throw HostNetError("bind netlink", where_, errno: code)
        }
        socket = opened
        portID = mnl_socket_get_portid(opened)
        sequence = UInt32(truncatingIfNeeded: time(nil))
        // MNL_SOCKET_BUFFER_SIZE is the page-sized minimum; dumps of many links need more.
        buffer = .allocate(byteCount: 32 * 1024, alignment: 16)
    }

    deinit {
        mnl_socket_close(socket)
        buffer.deallocate()
    }

    private var location: String { namespace.map { " in \($0.name)" } ?? "" }

    // MARK: - Requests

    /// Builds one request in the buffer, sends it, and waits for the ACK (or the error).
    private func request(
        _ operation: String, _ object: String, type: Int, flags: Int32,
        build: (UnsafeMutablePointer<nlmsghdr>) -> Void
    ) throws(HostNetError) {
        memset(buffer.baseAddress!, 0, buffer.count)
        let header = mnl_nlmsg_put_header(buffer.baseAddress!)!
        header.pointee.nlmsg_type = UInt16(type)
        header.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_ACK | flags)
        sequence &+= 1
        header.pointee.nlmsg_seq = sequence
        build(header)
        try exchange(header, operation, object + location, callback: nil, context: nil)
    }

    /// Sends `header` and reads replies until the ACK, the end of a dump, or an error.
    private func exchange(
        _ header: UnsafeMutablePointer<nlmsghdr>, _ operation: String, _ object: String,
        callback: mnl_cb_t?, context: UnsafeMutableRawPointer?
    ) throws(HostNetError) {
        guard mnl_socket_sendto(socket, header, Int(header.pointee.nlmsg_len)) >= 0 else {
            throw HostNetError(operation, object, errno: errno)
        }
        let expected = header.pointee.nlmsg_seq
        // Bounded: a dump ends with NLMSG_DONE and a request with one ACK; the kernel sends
        // nothing else on this private socket.
        for _ in 0..<100_000 {
            let received = mnl_socket_recvfrom(socket, buffer.baseAddress!, buffer.count)
            guard received >= 0 else { throw HostNetError(operation, object, errno: errno) }
            let result = mnl_cb_run(buffer.baseAddress!, received, expected, portID, callback, context)
            if result < 0 { throw HostNetError(operation, object, errno: errno) }
            if result == MNL_CB_STOP { return }
        }
        throw HostNetError(operation, object, errno: EPROTO, detail: "no end of netlink reply")
    }

    // MARK: - Links

    /// The interface index of `name`, or a thrown ENODEV.
    public func linkIndex(named name: String) throws(HostNetError) -> Int32 {
        guard let link = try links().first(where: { $0.name == name }) else {
            throw HostNetError("find link", name + location, errno: ENODEV)
        }
        return link.index
    }

    /// Every link of the namespace, as the kernel reports them.
    public func links() throws(HostNetError) -> [LinkInfo] {
        memset(buffer.baseAddress!, 0, buffer.count)
        let header = mnl_nlmsg_put_header(buffer.baseAddress!)!
        header.pointee.nlmsg_type = UInt16(RTM_GETLINK)
        header.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_DUMP)
        sequence &+= 1
        header.pointee.nlmsg_seq = sequence
        let message = mnl_nlmsg_put_extra_header(header, MemoryLayout<rtgenmsg>.size)!
        message.assumingMemoryBound(to: rtgenmsg.self).pointee.rtgen_family = UInt8(AF_PACKET)
        let collector = LinkCollector()
        try withExtendedLifetime(collector) { () throws(HostNetError) in
            try exchange(
                header, "list links", location.isEmpty ? "current namespace" : String(location.dropFirst(4)),
                callback: LinkCollector.callback, context: Unmanaged.passUnretained(collector).toOpaque())
        }
        return collector.links
    }

    /// Creates a veth pair: `name` here, `peer` in `peerNamespace` (here when nil).
    public func createVeth(named name: String, peer: String, peerNamespace: NetworkNamespace? = nil) throws(HostNetError) {
        let peerDescriptor = try peerNamespace?.openDescriptor()
        defer { if let peerDescriptor { close(peerDescriptor) } }
        try request("create veth", "\(name)/\(peer)", type: Int(RTM_NEWLINK), flags: NLM_F_CREATE | NLM_F_EXCL) { header in
            _ = mnl_nlmsg_put_extra_header(header, MemoryLayout<ifinfomsg>.size)
            mnl_attr_put_strz(header, UInt16(IFLA_IFNAME), name)
            let linkInfo = mnl_attr_nest_start(header, UInt16(IFLA_LINKINFO))
            mnl_attr_put_strz(header, UInt16(IFLA_INFO_KIND), "veth")
            let data = mnl_attr_nest_start(header, UInt16(IFLA_INFO_DATA))
            let peerInfo = mnl_attr_nest_start(header, UInt16(VETH_INFO_PEER))
            // The peer's attributes start with its own ifinfomsg inside the nest.
            _ = mnl_nlmsg_put_extra_header(header, MemoryLayout<ifinfomsg>.size)
            mnl_attr_put_strz(header, UInt16(IFLA_IFNAME), peer)
            if let peerDescriptor { mnl_attr_put_u32(header, UInt16(IFLA_NET_NS_FD), UInt32(peerDescriptor)) }
            mnl_attr_nest_end(header, peerInfo)
            mnl_attr_nest_end(header, data)
            mnl_attr_nest_end(header, linkInfo)
        }
    }

    /// Creates a Linux bridge.
    public func createBridge(named name: String) throws(HostNetError) {
        try createLink(named: name, kind: "bridge")
    }

    /// Creates the kernel's own VXLAN device (used as an interoperability peer): learning off,
    /// UDP `port`, local underlay address `local`.
    public func createVXLAN(named name: String, vni: VNI, local: IPv4Address, port: UInt16 = VXLANPacket.port)
        throws(HostNetError)
    {
        try createLink(named: name, kind: "vxlan") { header in
            mnl_attr_put_u32(header, UInt16(IFLA_VXLAN_ID), vni.rawValue)
            mnl_attr_put_u32(header, UInt16(IFLA_VXLAN_LOCAL), local.rawValue.bigEndian)
            mnl_attr_put_u16(header, UInt16(IFLA_VXLAN_PORT), port.bigEndian)
            mnl_attr_put_u8(header, UInt16(IFLA_VXLAN_LEARNING), 0)
        }
    }

    private func createLink(
        named name: String, kind: String, data: ((UnsafeMutablePointer<nlmsghdr>) -> Void)? = nil
    ) throws(HostNetError) {
        try request("create \(kind)", name, type: Int(RTM_NEWLINK), flags: NLM_F_CREATE | NLM_F_EXCL) { header in
            _ = mnl_nlmsg_put_extra_header(header, MemoryLayout<ifinfomsg>.size)
            mnl_attr_put_strz(header, UInt16(IFLA_IFNAME), name)
            let linkInfo = mnl_attr_nest_start(header, UInt16(IFLA_LINKINFO))
            mnl_attr_put_strz(header, UInt16(IFLA_INFO_KIND), kind)
            if let data {
                let nest = mnl_attr_nest_start(header, UInt16(IFLA_INFO_DATA))
                data(header)
                mnl_attr_nest_end(header, nest)
            }
            mnl_attr_nest_end(header, linkInfo)
        }
    }

    /// Changes attributes of an existing link.
    private func modifyLink(
        _ operation: String, index: Int32, build: (UnsafeMutablePointer<nlmsghdr>, UnsafeMutablePointer<ifinfomsg>) -> Void
    ) throws(HostNetError) {
        try request(operation, "link #\(index)", type: Int(RTM_NEWLINK), flags: 0) { header in
            let info = mnl_nlmsg_put_extra_header(header, MemoryLayout<ifinfomsg>.size)!
                .assumingMemoryBound(to: ifinfomsg.self)
            info.pointee.ifi_family = UInt8(AF_UNSPEC)
            info.pointee.ifi_index = index
            build(header, info)
        }
    }

    /// Sets the administrative state up.
    public func setLinkUp(_ index: Int32) throws(HostNetError) {
        try modifyLink("set up", index: index) { _, info in
            info.pointee.ifi_change = UInt32(IFF_UP)
            info.pointee.ifi_flags = UInt32(IFF_UP)
        }
    }

    /// Sets the MTU.
    public func setMTU(_ index: Int32, _ mtu: Int) throws(HostNetError) {
        try modifyLink("set mtu \(mtu)", index: index) { header, _ in
            mnl_attr_put_u32(header, UInt16(IFLA_MTU), UInt32(mtu))
        }
    }

    /// Sets the link-layer address.
    public func setMAC(_ index: Int32, _ mac: MACAddress) throws(HostNetError) {
        try modifyLink("set address \(mac)", index: index) { header, _ in
            let bytes = mac.bytes
            mnl_attr_put(header, UInt16(IFLA_ADDRESS), bytes.count, bytes)
        }
    }

    /// Enslaves the link to a bridge (or any master device).
    public func setMaster(_ index: Int32, master: Int32) throws(HostNetError) {
        try modifyLink("set master #\(master)", index: index) { header, _ in
            mnl_attr_put_u32(header, UInt16(IFLA_MASTER), UInt32(master))
        }
    }

    /// Renames the link (it must be down).
    public func rename(_ index: Int32, to name: String) throws(HostNetError) {
        try modifyLink("rename to \(name)", index: index) { header, _ in
            mnl_attr_put_strz(header, UInt16(IFLA_IFNAME), name)
        }
    }

    /// Moves the link into another namespace.
    public func moveLink(_ index: Int32, to target: NetworkNamespace) throws(HostNetError) {
        let descriptor = try target.openDescriptor()
        defer { close(descriptor) }
        try modifyLink("move to \(target.name)", index: index) { header, _ in
            mnl_attr_put_u32(header, UInt16(IFLA_NET_NS_FD), UInt32(descriptor))
        }
    }

    /// Deletes the link (for a veth, both ends go).
    public func deleteLink(_ index: Int32) throws(HostNetError) {
        try request("delete link", "#\(index)", type: Int(RTM_DELLINK), flags: 0) { header in
            let info = mnl_nlmsg_put_extra_header(header, MemoryLayout<ifinfomsg>.size)!
                .assumingMemoryBound(to: ifinfomsg.self)
            info.pointee.ifi_index = index
        }
    }

    // MARK: - Addresses, routes, neighbours

    /// Adds an IPv4 address with its prefix length to the link.
    public func addAddress(_ address: IPv4Prefix, to index: Int32) throws(HostNetError) {
        try request("add address", "\(address) on #\(index)", type: Int(RTM_NEWADDR), flags: NLM_F_CREATE | NLM_F_EXCL) {
            header in
            let message = mnl_nlmsg_put_extra_header(header, MemoryLayout<ifaddrmsg>.size)!
                .assumingMemoryBound(to: ifaddrmsg.self)
            message.pointee.ifa_family = UInt8(AF_INET)
            message.pointee.ifa_prefixlen = UInt8(address.length)
            message.pointee.ifa_index = UInt32(index)
            mnl_attr_put_u32(header, UInt16(IFA_LOCAL), address.address.rawValue.bigEndian)
            mnl_attr_put_u32(header, UInt16(IFA_ADDRESS), address.address.rawValue.bigEndian)
            if address.length < 31 {
                mnl_attr_put_u32(header, UInt16(IFA_BROADCAST), address.broadcast.rawValue.bigEndian)
            }
        }
    }

    /// Adds a route to `destination` via `gateway` (or directly on the link when nil) out of
    /// link `index` (or wherever the gateway is reachable when nil). `0.0.0.0/0` is the default.
    public func addRoute(to destination: IPv4Prefix, via gateway: IPv4Address?, device index: Int32?) throws(HostNetError) {
        try request(
            "add route", "\(destination) via \(gateway?.description ?? "link")", type: Int(RTM_NEWROUTE),
            flags: NLM_F_CREATE | NLM_F_EXCL
        ) { header in
            let message = mnl_nlmsg_put_extra_header(header, MemoryLayout<rtmsg>.size)!
                .assumingMemoryBound(to: rtmsg.self)
            message.pointee.rtm_family = UInt8(AF_INET)
            message.pointee.rtm_dst_len = UInt8(destination.length)
            message.pointee.rtm_table = UInt8(RT_TABLE_MAIN.rawValue)
            message.pointee.rtm_protocol = UInt8(RTPROT_STATIC)
            message.pointee.rtm_scope = UInt8(gateway == nil ? RT_SCOPE_LINK.rawValue : RT_SCOPE_UNIVERSE.rawValue)
            message.pointee.rtm_type = UInt8(RTN_UNICAST)
            if destination.length > 0 {
                mnl_attr_put_u32(header, UInt16(RTA_DST.rawValue), destination.network.rawValue.bigEndian)
            }
            if let gateway { mnl_attr_put_u32(header, UInt16(RTA_GATEWAY.rawValue), gateway.rawValue.bigEndian) }
            if let index { mnl_attr_put_u32(header, UInt16(RTA_OIF.rawValue), UInt32(index)) }
        }
    }

    /// Adds (or replaces) a permanent ARP entry `address` → `mac` on the link.
    public func addNeighbour(_ address: IPv4Address, mac: MACAddress, device index: Int32) throws(HostNetError) {
        try request(
            "add neighbour", "\(address) lladdr \(mac) on #\(index)", type: Int(RTM_NEWNEIGH),
            flags: NLM_F_CREATE | NLM_F_REPLACE
        ) { header in
            let message = mnl_nlmsg_put_extra_header(header, MemoryLayout<ndmsg>.size)!
                .assumingMemoryBound(to: ndmsg.self)
            message.pointee.ndm_family = UInt8(AF_INET)
            message.pointee.ndm_ifindex = index
            message.pointee.ndm_state = UInt16(NUD_PERMANENT)
            mnl_attr_put_u32(header, UInt16(NDA_DST), address.rawValue.bigEndian)
            let bytes = mac.bytes
            mnl_attr_put(header, UInt16(NDA_LLADDR), bytes.count, bytes)
        }
    }

    /// Adds a static forwarding entry to a VXLAN device: frames for `mac` go to `remote`
    /// (`bridge fdb append MAC dev DEV dst REMOTE`). The all-zero MAC is the default entry.
    public func addForwardingEntry(mac: MACAddress, remote: IPv4Address, device index: Int32) throws(HostNetError) {
        try request(
            "add fdb entry", "\(mac) dst \(remote) on #\(index)", type: Int(RTM_NEWNEIGH),
            flags: NLM_F_CREATE | NLM_F_APPEND
        ) { header in
            let message = mnl_nlmsg_put_extra_header(header, MemoryLayout<ndmsg>.size)!
                .assumingMemoryBound(to: ndmsg.self)
            message.pointee.ndm_family = UInt8(AF_BRIDGE)
            message.pointee.ndm_ifindex = index
            message.pointee.ndm_state = UInt16(NUD_PERMANENT | NUD_NOARP)
            message.pointee.ndm_flags = UInt8(NTF_SELF)
            let bytes = mac.bytes
            mnl_attr_put(header, UInt16(NDA_LLADDR), bytes.count, bytes)
            mnl_attr_put_u32(header, UInt16(NDA_DST), remote.rawValue.bigEndian)
        }
    }
}
