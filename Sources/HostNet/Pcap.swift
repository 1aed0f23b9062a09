import CLibPcap
import Glibc

/// Writes Ethernet frames to a pcap file through libpcap, readable by `tcpdump -r` and
/// Wireshark. The file appears under its final name only when ``close()`` succeeds (it is
/// written to a temporary name and renamed), so a reader never sees half a capture.
///
/// Used by one thread at a time; it may be handed from one thread to another (a capture is
/// written by the overlay's engine thread and closed by whoever asked for it).
public final class PcapWriter: @unchecked Sendable {
    /// The final path.
    public let path: String
    private let temporaryPath: String
    private var handle: OpaquePointer?
    private var dumper: OpaquePointer?
    /// Frames written so far.
    public private(set) var count = 0

    /// Opens `path` for writing frames of link type Ethernet, cut at `snapLength` bytes.
    public init(path: String, snapLength: Int32 = 262_144) throws(HostNetError) {
        self.path = path
        temporaryPath = path + ".tmp"
        guard let handle = pcap_open_dead(DLT_EN10MB, snapLength) else {
            throw HostNetError("open pcap", path, errno: ENOMEM)
        }
        guard let dumper = pcap_dump_open(handle, temporaryPath) else {
            let detail = String(cString: pcap_geterr(handle))
            pcap_close(handle)
            throw HostNetError("open pcap", path, errno: 0, detail: detail)
        }
        self.handle = handle
        self.dumper = dumper
    }

    deinit {
        if dumper != nil {
            try? close()
        }
    }

    /// Appends one frame with the given (or current) time.
    public func write(_ frame: UnsafeRawBufferPointer, at time: timeval? = nil) {
        guard let dumper else { preconditionFailure("pcap writer used after close") }
        var header = pcap_pkthdr()
        if let time {
            header.ts = time
        } else {
            gettimeofday(&header.ts, nil)
        }
        header.caplen = UInt32(frame.count)
        header.len = UInt32(frame.count)
        pcap_dump(
            UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header,
            frame.baseAddress?.assumingMemoryBound(to: UInt8.self))
        count += 1
    }

    /// Flushes, closes and moves the file to its final name.
    public func close() throws(HostNetError) {
        guard let dumper, let handle else { return }
        let flushed = pcap_dump_flush(dumper)
        pcap_dump_close(dumper)
        pcap_close(handle)
        self.dumper = nil
        self.handle = nil
        guard flushed == 0 else {
            unlink(temporaryPath)
            throw HostNetError("write pcap", path, errno: EIO)
        }
        try checkErrno(rename(temporaryPath, path), "rename pcap", path)
    }
}

/// Reads frames from a pcap file through libpcap.
public final class PcapReader {
    public let path: String
    private var handle: OpaquePointer?

    /// One frame and when it was captured.
    public struct Frame: Sendable {
        public var bytes: [UInt8]
        /// The length on the wire (may exceed `bytes.count` when the capture was cut).
        public var originalLength: Int
        public var seconds: Int
        public var microseconds: Int
    }

    public init(path: String) throws(HostNetError) {
        self.path = path
        var error = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = pcap_open_offline(path, &error) else {
            throw HostNetError("open pcap", path, errno: 0, detail: String(cBuffer: error))
        }
        self.handle = handle
    }

    deinit { if let handle { pcap_close(handle) } }

    /// The link type of the file (1 is Ethernet).
    public var linkType: Int32 { pcap_datalink(handle) }

    /// The next frame, or nil at the end of the file.
    public func next() throws(HostNetError) -> Frame? {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        switch pcap_next_ex(handle, &header, &data) {
        case 1:
            let header = header!.pointee
            return Frame(
                bytes: Array(UnsafeBufferPointer(start: data, count: Int(header.caplen))),
                originalLength: Int(header.len), seconds: Int(header.ts.tv_sec), microseconds: Int(header.ts.tv_usec))
        case PCAP_ERROR_BREAK:
            return nil
        default:
            throw HostNetError("read pcap", path, errno: 0, detail: String(cString: pcap_geterr(handle)))
        }
    }

    /// Every remaining frame.
    public func readAll() throws(HostNetError) -> [Frame] {
        var frames: [Frame] = []
        while let frame = try next() { frames.append(frame) }
        return frames
    }
}

/// A live capture on one interface through libpcap, with a BPF filter, opened inside a
/// network namespace (the packet socket stays there).
public final class LiveCapture {
    public let interface: String
    private let handle: OpaquePointer

    /// Opens `interface` in `namespace` (the caller's when nil), filtered by `filter`
    /// (tcpdump syntax; empty for everything).
    public init(interface: String, in namespace: NetworkNamespace? = nil, filter: String = "", snapLength: Int32 = 262_144)
        throws(HostNetError)
    {
        self.interface = interface
        var error = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        let object = interface + (namespace.map { " in \($0.name)" } ?? "")
        let activate = { () throws(HostNetError) -> OpaquePointer in
            guard let handle = pcap_create(interface, &error) else {
                throw HostNetError("open capture", object, errno: 0, detail: String(cBuffer: error))
            }
            pcap_set_snaplen(handle, snapLength)
            pcap_set_immediate_mode(handle, 1)
            pcap_set_timeout(handle, 50)
            let status = pcap_activate(handle)
            if status < 0 {
                let detail = String(cString: pcap_geterr(handle))
                pcap_close(handle)
                throw HostNetError("activate capture", object, errno: 0, detail: detail)
            }
            return handle
        }
        let opened: OpaquePointer
        if let namespace {
            do { opened = try namespace.run { try activate() } } catch let error as HostNetError { throw error } catch {
                throw HostNetError("open capture", object, errno: EINVAL)
            }
        } else {
            opened = try activate()
        }
        // From here on deinit owns the handle: error paths throw without closing it.
        handle = opened
        if !filter.isEmpty {
            var program = bpf_program()
            guard pcap_compile(handle, &program, filter, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
                let detail = String(cString: pcap_geterr(handle))
                throw HostNetError("compile filter", "'\(filter)'", errno: 0, detail: detail)
            }
            defer { pcap_freecode(&program) }
            guard pcap_setfilter(handle, &program) == 0 else {
                let detail = String(cString: pcap_geterr(handle))
                throw HostNetError("set filter", "'\(filter)'", errno: 0, detail: detail)
            }
        }
        pcap_setnonblock(handle, 1, &error)
    }

    deinit { pcap_close(handle) }

    /// The next captured frame, waiting at most `timeoutMilliseconds`; nil when none came.
    public func next(timeoutMilliseconds: Int32) throws(HostNetError) -> [UInt8]? {
        let deadline = monotonicSeconds() + Double(timeoutMilliseconds) / 1000
        // Bounded by the deadline; each pass polls for at most the time left.
        while true {
            var header: UnsafeMutablePointer<pcap_pkthdr>?
            var data: UnsafePointer<UInt8>?
            let result = pcap_next_ex(handle, &header, &data)
            if result == 1 { return Array(UnsafeBufferPointer(start: data, count: Int(header!.pointee.caplen))) }
            if result < 0 {
                throw HostNetError("capture", interface, errno: 0, detail: String(cString: pcap_geterr(handle)))
            }
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { return nil }
            var entry = pollfd(fd: pcap_get_selectable_fd(handle), events: Int16(POLLIN), revents: 0)
            _ = poll(&entry, 1, Int32(remaining * 1000) + 1)
        }
    }

    /// Every frame captured until `timeoutMilliseconds` pass with nothing new.
    public func drain(idleMilliseconds: Int32, limit: Int = 100_000) throws(HostNetError) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        while frames.count < limit, let frame = try next(timeoutMilliseconds: idleMilliseconds) { frames.append(frame) }
        return frames
    }
}
