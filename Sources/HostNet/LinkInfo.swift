import CLibMnl
import Glibc
import Wire

/// One link as an RTM_GETLINK dump reports it.
public struct LinkInfo: Hashable, Sendable, CustomStringConvertible {
    public var index: Int32
    public var name: String
    public var mtu: Int
    public var mac: MACAddress?
    /// `IFF_*` flags (`IFF_UP` is 1).
    public var flags: UInt32
    /// The `IFLA_INFO_KIND` (veth, bridge, tun, vxlan, …); empty for plain devices such as `lo`.
    public var kind: String

    public var isUp: Bool { flags & UInt32(IFF_UP) != 0 }

    public var description: String {
        "\(index): \(name)\(kind.isEmpty ? "" : " (\(kind))") mtu \(mtu)\(mac.map { " \($0)" } ?? "")\(isUp ? " UP" : "")"
    }
}

/// Gathers links from a dump; its static callback is handed to `mnl_cb_run`.
final class LinkCollector {
    var links: [LinkInfo] = []

    static let callback: mnl_cb_t = { header, context in
        guard let header, let context else { return MNL_CB_ERROR }
        let collector = Unmanaged<LinkCollector>.fromOpaque(context).takeUnretainedValue()
        let info = mnl_nlmsg_get_payload(header)!.assumingMemoryBound(to: ifinfomsg.self).pointee
        var link = LinkInfo(index: info.ifi_index, name: "", mtu: 0, mac: nil, flags: info.ifi_flags, kind: "")
        withUnsafeMutablePointer(to: &link) { pointer in
            _ = mnl_attr_parse(header, UInt32(MemoryLayout<ifinfomsg>.size), attributeCallback, pointer)
        }
        collector.links.append(link)
        return MNL_CB_OK
    }

    private static let attributeCallback: mnl_attr_cb_t = { attribute, context in
        guard let attribute, let context else { return MNL_CB_ERROR }
        let link = context.assumingMemoryBound(to: LinkInfo.self)
        let length = Int(mnl_attr_get_payload_len(attribute))
        let payload = mnl_attr_get_payload(attribute)!
        switch Int(mnl_attr_get_type(attribute)) {
        case Int(IFLA_IFNAME):
            link.pointee.name = String(cString: payload.assumingMemoryBound(to: CChar.self))
        case Int(IFLA_MTU) where length >= 4:
            link.pointee.mtu = Int(payload.loadUnaligned(as: UInt32.self))
        case Int(IFLA_ADDRESS) where length == 6:
            let b = UnsafeRawBufferPointer(start: payload, count: 6)
            link.pointee.mac = MACAddress(b[0], b[1], b[2], b[3], b[4], b[5])
        case Int(IFLA_LINKINFO):
            _ = mnl_attr_parse_nested(attribute, linkInfoCallback, context)
        default:
            break
        }
        return MNL_CB_OK
    }

    private static let linkInfoCallback: mnl_attr_cb_t = { attribute, context in
        guard let attribute, let context else { return MNL_CB_ERROR }
        if Int(mnl_attr_get_type(attribute)) == Int(IFLA_INFO_KIND) {
            let link = context.assumingMemoryBound(to: LinkInfo.self)
            link.pointee.kind = String(cString: mnl_attr_get_payload(attribute)!.assumingMemoryBound(to: CChar.self))
        }
        return MNL_CB_OK
    }
}
