import CShoal
import Dispatch
import Foundation
import HostNet
import Logging
import Synchronization
import Wire

/// One packet thread of an ``OverlayEngine``: its own epoll set, wake-up eventfd, command queue,
/// buffers and counters, so that two of them share nothing on the packet path but the
/// read-only forwarding tables and the descriptors (the kernel serializes each TAP write and
/// each UDP send). With both roles it is the whole data plane; with one, half of it.
final class EngineWorker: @unchecked Sendable {
    /// Which descriptors the thread serves.
    struct Roles: OptionSet, CustomStringConvertible {
        let rawValue: Int
        /// The underlay socket: receive, decapsulate, coalesce, write to TAPs.
        static let wire = Roles(rawValue: 1)
        /// The endpoint TAPs: read, switch locally or segment, encapsulate and send.
        static let ports = Roles(rawValue: 2)

        var description: String { [contains(.wire) ? "wire" : nil, contains(.ports) ? "ports" : nil].compactMap { $0 }.joined(separator: "+") }
    }

    let roles: Roles
    private let configuration: OverlayEngine.Configuration
    private let socket: UnderlaySocket
    private let logger = Logger(label: "shoal.overlay")
    private let pollDescriptor: Int32
    private let wakeDescriptor: Int32
    /// Commands for the thread, and whether it takes any: set by ``start()``, cleared by
    /// ``stop()`` in the same critical section that queues `.stop`, so that nothing is queued
    /// behind it to wait for an answer that never comes.
    private let commands = Mutex<(accepting: Bool, queue: [Command])>((false, []))
    private let stopped = DispatchSemaphore(value: 0)

    // Thread state. `hot` is copied into a local once per wake-up.
    private var hot: HotPath
    private var tables: ForwardingTables
    private var networkNames: [(name: String, vni: VNI)] = []
    private var cumulative: [String: NetworkStatistics] = [:]
    private var cumulativeUnattributed: [String: UInt64] = [:]
    private var captureSession: CaptureSession?
    private var running = true
    /// Monotonic seconds, read once per wake-up for the balancer's idle timeouts.
    private var now: UInt32 = 0
    /// Send segmented super-frames with UDP_SEGMENT (unless configured off) until the kernel
    /// refuses it once.
    private var udpSegmentationOffload: Bool
    private let buffers: PacketBuffers

    private static let wakeTag: UInt64 = .max
    private static let underlayTag: UInt64 = .max - 1

    init(roles: Roles, configuration: OverlayEngine.Configuration, socket: UnderlaySocket) throws {
        self.roles = roles
        self.configuration = configuration
        self.socket = socket
        udpSegmentationOffload = configuration.sendOffload
        pollDescriptor = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard pollDescriptor >= 0 else { throw HostNetError("epoll_create1", "overlay engine", errno: errno) }
        wakeDescriptor = shoal_eventfd()
        guard wakeDescriptor >= 0 else {
            close(pollDescriptor)
            throw HostNetError("eventfd", "overlay engine", errno: -wakeDescriptor)
        }
        let frameLimit = configuration.mtu + EthernetFrame.headerLength
        tables = ForwardingTables(topology: Topology(), ports: [], maximumFrameLength: frameLimit)
        buffers = PacketBuffers(batchSize: configuration.batchSize, slotSize: roles.contains(.wire) ? 65536 : 0)
        hot = HotPath(switch: tables.view, ports: [], counters: Counters(networks: 0), captureNetwork: -1)
        try register(wakeDescriptor, tag: Self.wakeTag)
        if roles.contains(.wire) { try register(socket.descriptor, tag: Self.underlayTag) }
    }

    deinit {
        stop()
        hot.deallocate()
        buffers.deallocate()
        close(pollDescriptor)
        close(wakeDescriptor)
    }

    /// Starts the thread. Calling it while it runs is a no-op.
    func start() {
        let starting = commands.withLock { state in
            defer { state.accepting = true }
            return !state.accepting
        }
        guard starting else { return }
        let thread = Thread { [self] in
            run()
            stopped.signal()
        }
        thread.name = "shoal-overlay-\(roles)"
        thread.start()
    }

    /// Stops the thread and waits for it. Safe to call more than once.
    func stop() {
        let stopping = commands.withLock { state in
            guard state.accepting else { return false }
            state.accepting = false
            state.queue.append(.stop)
            return true
        }
        guard stopping else { return }
        _ = shoal_eventfd_signal(wakeDescriptor)
        stopped.wait()
    }

    /// Queues a command for the thread; false when the thread does not take commands (not
    /// started, or stopping), and then the caller may act on the worker's state directly only
    /// once ``stop()`` has returned.
    @discardableResult
    func submit(_ command: Command) -> Bool {
        let queued = commands.withLock { state in
            if state.accepting { state.queue.append(command) }
            return state.accepting
        }
        if queued { _ = shoal_eventfd_signal(wakeDescriptor) }
        return queued
    }

    // MARK: - Packet thread

    private func run() {
        let eventCapacity = 64
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: eventCapacity)
        defer { events.deallocate() }
        logger.info("overlay packet thread running", metadata: [
            "vtep": "\(configuration.underlayAddress):\(configuration.port)", "roles": "\(roles)"])
        running = true
        while running {
            let ready = epoll_wait(pollDescriptor, events, Int32(eventCapacity), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                logger.critical("epoll_wait failed", metadata: ["errno": "\(errno)"])
                break
            }
            let path = hot
            now = Self.monotonicSeconds()
            var pending = 0
            var woken = false
            for index in 0..<Int(ready) {
                let tag = events[index].data.u64
                if tag == Self.wakeTag {
                    woken = true
                } else if tag == Self.underlayTag {
                    receiveFromWire(path)
                } else {
                    receiveFromPort(Int(tag), path, pending: &pending)
                }
            }
            flush(path, pending: &pending)
            if woken {
                _ = shoal_eventfd_drain(wakeDescriptor)
                for command in commands.withLock({ state in defer { state.queue.removeAll() }; return state.queue }) {
                    perform(command)
                }
            }
        }
    }

    /// Reads one batch of datagrams from the underlay, decides each, and delivers the frames for
    /// local endpoints coalesced per endpoint (software GRO), whenever the delivery list fills
    /// and once the batch is read.
    @inline(__always)
    private func receiveFromWire(_ path: HotPath) {
        let datagrams = buffers.receive
        for index in 0..<buffers.batchSize {
            datagrams[index].length = UInt32(buffers.slotSize)
        }
        let received = socket.receive(datagrams, count: buffers.batchSize)
        guard received > 0 else { return }
        let unattributed = path.counters.unattributed
        var deliveries = 0
        for index in 0..<received {
            let datagram = datagrams[index]
            if datagram.flags & 1 != 0 {
                path.counters.drop(.truncatedDatagram, network: unattributed)
                continue
            }
            let vtep = IPv4Address(rawValue: datagram.address)
            let buffer = UnsafeMutableRawBufferPointer(start: datagram.buffer, count: Int(datagram.length))
            // With UDP GRO the buffer holds datagrams of `segment_size` bytes back to back (the
            // last may be shorter); without, it is one datagram. Bounded: each pass moves on by
            // at least one byte, except a lone empty datagram, decided once.
            let step = datagram.segment_size > 0 ? Int(datagram.segment_size) : max(1, buffer.count)
            var offset = 0
            repeat {
                let bytes = buffer.slice(offset, min(offset + step, buffer.count))
                offset += step
                if deliveries == buffers.deliveryCapacity {
                    deliverCoalesced(deliveries, path)
                    deliveries = 0
                }
                decideFromWire(bytes, from: vtep, path, deliveries: &deliveries)
            } while offset < buffer.count
        }
        deliverCoalesced(deliveries, path)
    }

    /// Decides one datagram from the wire: a frame for a local endpoint joins the delivery list.
    @inline(__always)
    private func decideFromWire(
        _ bytes: UnsafeMutableRawBufferPointer, from vtep: IPv4Address, _ path: HotPath, deliveries: inout Int
    ) {
        let unattributed = path.counters.unattributed
        var network = unattributed
        let verdict = path.switch.fromWire(vtep: vtep, datagram: bytes, networkIndex: &network, now: now)
        if network != unattributed {
            path.counters.add(.datagramsReceived, network: network)
            path.counters.add(.bytesReceived, network: network, bytes.count)
        }
        switch verdict {
        case .deliver(let port):
            let frame = bytes.slice(VXLANPacket.headerLength, bytes.count)
            if path.captureNetwork == network { captureFrame(frame) }
            buffers.deliveryFrames[deliveries] = frame
            buffers.deliveryPorts[deliveries] = port
            deliveries += 1
        case .replyToWire:
            var reply = shoal_datagram(
                buffer: bytes.baseAddress, length: UInt32(bytes.count), address: vtep.rawValue, port: configuration.port,
                flags: 0, segment_size: 0)
            if socket.send(&reply, count: 1) == 1 {
                path.counters.add(.arpAnswered, network: network)
            } else {
                path.counters.drop(.sendFailed, network: network)
            }
        case .drop(let reason):
            path.counters.drop(reason, network: network)
        case .encapsulate, .replyToPort, .resetToPort:
            preconditionFailure("fromWire never returns \(verdict)")
        }
    }

    /// Writes the batch's frames to their endpoints: per endpoint, in-order TCP segments of a
    /// flow become one GSO frame; everything else goes alone behind an empty virtio-net header.
    @inline(__always)
    private func deliverCoalesced(_ count: Int, _ path: HotPath) {
        for first in 0..<count {
            let port = buffers.deliveryPorts[first]
            if port < 0 { continue }  // gathered with an earlier frame for the same endpoint
            var gathered = 0
            for index in first..<count where buffers.deliveryPorts[index] == port {
                buffers.gatherFrames[gathered] = buffers.deliveryFrames[index]
                buffers.deliveryPorts[index] = -1
                gathered += 1
            }
            let network = path.switch.networkIndex(ofPort: port)
            let frames = UnsafeBufferPointer(start: buffers.gatherFrames, count: gathered)
            guard let results = try? TCPCoalescing.coalesce(frames, into: buffers.coalesced, results: buffers.coalescedResults) else {
                // Cannot happen with MTU-sized frames and the output sized for a full batch.
                for _ in 0..<gathered { path.counters.drop(.portBusy, network: network) }
                continue
            }
            for index in 0..<results {
                let result = buffers.coalescedResults[index]
                if write(path.ports[port], buffers.coalesced.baseAddress! + result.offset, result.length) == result.length {
                    path.counters.add(.framesToEndpoints, network: network, result.segments)
                    path.counters.add(.bytesToEndpoints, network: network, result.length - VirtioNetHeader.length)
                } else {
                    for _ in 0..<result.segments { path.counters.drop(.portBusy, network: network) }
                }
            }
        }
    }

    /// Reads up to one batch of frames from local port `port`. Each read is a virtio-net header
    /// and a frame that may be a 64 KiB TCP or UDP super-frame, segmented here only if it leaves
    /// the node.
    @inline(__always)
    private func receiveFromPort(_ port: Int, _ path: HotPath, pending: inout Int) {
        guard port < path.portCount else { return }
        let descriptor = path.ports[port]
        let network = path.switch.networkIndex(ofPort: port)
        for _ in 0..<buffers.batchSize {
            let count = read(descriptor, buffers.tapRead.baseAddress, buffers.tapRead.count)
            if count <= 0 { return }  // EAGAIN: the TAP is empty
            let read = buffers.tapRead.slice(0, count)
            guard count > VirtioNetHeader.length,
                let header = try? VirtioNetHeader(parsing: read, frameLength: count - VirtioNetHeader.length),
                Self.isSupported(header.gsoType)
            else {
                path.counters.drop(.malformedFrame, network: network)
                continue
            }
            let frame = read.slice(VirtioNetHeader.length, count)
            path.counters.add(.framesFromEndpoints, network: network)
            path.counters.add(.bytesFromEndpoints, network: network, frame.count)
            if path.captureNetwork == network { captureFrame(frame) }
            let superFrame = header.gsoType.base != .none
            let partialChecksum = header.flags.contains(.needsChecksum)
            switch path.switch.fromPort(port, frame: frame, superFrame: superFrame, partialChecksum: partialChecksum, now: now) {
            case .deliver(let target):
                // Header and all: the receiving kernel finishes checksums and segments itself.
                if write(path.ports[target], read.baseAddress, count) == count {
                    path.counters.add(.framesToEndpoints, network: network)
                    path.counters.add(.bytesToEndpoints, network: network, frame.count)
                } else {
                    path.counters.drop(.portBusy, network: network)
                }
            case .encapsulate(let vtep, let vni):
                if superFrame {
                    enqueueSegments(of: frame, segmentSize: Int(header.gsoSize), vtep: vtep, vni: vni, network: network, path, &pending)
                } else {
                    if header.flags.contains(.needsChecksum) { Self.completeChecksum(frame, header) }
                    if pending == buffers.sendCapacity { flush(path, pending: &pending) }
                    let slot = buffers.sendSlot(pending)
                    slot.slice(VXLANPacket.headerLength, VXLANPacket.headerLength + frame.count)
                        .copyMemory(from: UnsafeRawBufferPointer(frame))
                    enqueue(slot: pending, length: frame.count, vtep: vtep, vni: vni, network: network)
                    pending += 1
                }
            case .replyToPort:
                try? VirtioNetHeader.none.write(to: read)
                if write(descriptor, read.baseAddress, count) == count {
                    path.counters.add(.arpAnswered, network: network)
                } else {
                    path.counters.drop(.portBusy, network: network)
                }
            case .resetToPort(let length):
                try? VirtioNetHeader.none.write(to: read)
                if write(descriptor, read.baseAddress, VirtioNetHeader.length + length) == VirtioNetHeader.length + length {
                    path.counters.add(.connectionsReset, network: network)
                } else {
                    path.counters.drop(.portBusy, network: network)
                }
            case .drop(let reason):
                path.counters.drop(reason, network: network)
            case .replyToWire:
                preconditionFailure("fromPort never returns replyToWire")
            }
        }
    }

    /// Software TSO/USO: segments a super-frame (TCP or UDP) and sends the segments: with UDP
    /// GSO (the default) gathered into one `sendmsg` per 64 datagrams, else copied into send
    /// slots for the next `sendmmsg`.
    @inline(__always)
    private func enqueueSegments(
        of frame: UnsafeMutableRawBufferPointer, segmentSize: Int, vtep: IPv4Address, vni: VNI, network: Int,
        _ path: HotPath, _ pending: inout Int
    ) {
        if udpSegmentationOffload {
            // Earlier datagrams of the same flow must not be overtaken.
            flush(path, pending: &pending)
            if sendGathered(frame, segmentSize: segmentSize, vtep: vtep, vni: vni, network: network, path) {
                return
            }
            // Refused before anything left: this frame, and every later one, takes the copy path.
        }
        // At most this many segments: every one carries at least one payload byte of the frame.
        let most = (frame.count + segmentSize - 1) / segmentSize
        if pending + most > buffers.sendCapacity { flush(path, pending: &pending) }
        let output = buffers.sendRegion(from: pending).slice(VXLANPacket.headerLength, buffers.sendRegion(from: pending).count)
        let lengths = UnsafeMutableBufferPointer(start: buffers.segmentLengths, count: buffers.sendCapacity - pending)
        guard let segments = try? Segmentation.segment(
            frame, maximumSegmentSize: segmentSize, into: output, slotSize: buffers.sendSlotSize, lengths: lengths)
        else {
            path.counters.drop(.malformedFrame, network: network)
            return
        }
        for index in 0..<segments {
            enqueue(slot: pending, length: lengths[index], vtep: vtep, vni: vni, network: network)
            pending += 1
        }
    }

    /// Sends the segments of `frame` with UDP GSO, each datagram gathered from its own header
    /// slot (VXLAN header, then the segment's headers) and its payload where the TAP read left
    /// it: no payload copy. False only when the kernel refused UDP GSO before any segment left
    /// (UDP GSO is then off for good); every other outcome is sent or counted.
    @inline(__always)
    private func sendGathered(
        _ frame: UnsafeMutableRawBufferPointer, segmentSize: Int, vtep: IPv4Address, vni: VNI, network: Int,
        _ path: HotPath
    ) -> Bool {
        let slotSize = buffers.segmentHeaderSlotSize
        guard let (segments, headerLength) = try? Segmentation.segmentHeaders(
            frame, maximumSegmentSize: segmentSize,
            into: buffers.segmentHeaders.slice(VXLANPacket.headerLength, buffers.segmentHeaders.count),
            slotSize: slotSize, payloads: buffers.segmentPayloads),
            VXLANPacket.headerLength + headerLength + segmentSize <= Int(UInt16.max)
        else {
            path.counters.drop(.malformedFrame, network: network)
            return true
        }
        let datagramSize = VXLANPacket.headerLength + headerLength + segmentSize
        let vectors = buffers.segmentVectors
        for index in 0..<segments {
            let slot = buffers.segmentHeaders.slice(index * slotSize, index * slotSize + VXLANPacket.headerLength + headerLength)
            _ = try? VXLANPacket.build(in: slot.slice(0, VXLANPacket.headerLength), vni: vni)
            let payload = buffers.segmentPayloads[index]
            vectors[2 * index] = iovec(iov_base: slot.baseAddress, iov_len: slot.count)
            vectors[2 * index + 1] = iovec(iov_base: frame.baseAddress! + payload.lowerBound, iov_len: payload.count)
        }
        // One sendmsg carries at most 64 datagrams and 64 KiB of UDP payload.
        let perSend = max(1, min(64, 65000 / datagramSize))
        var first = 0
        while first < segments {
            let last = min(first + perSend, segments) - 1
            let length = (last - first) * datagramSize + VXLANPacket.headerLength + headerLength
                + buffers.segmentPayloads[last].count
            let sent = socket.sendSegmented(
                vectors + 2 * first, count: 2 * (last - first + 1), to: vtep, port: configuration.port, segmentSize: datagramSize)
            if sent == length {
                path.counters.add(.datagramsSent, network: network, last - first + 1)
                path.counters.add(.bytesSent, network: network, length)
            } else if sent == -Int(EIO) || sent == -Int(EINVAL) || sent == -Int(ENOPROTOOPT) {
                // This kernel or device cannot: segment into separate datagrams from now on.
                udpSegmentationOffload = false
                logger.warning("UDP GSO refused; sending segments one datagram each", metadata: ["errno": "\(-sent)"])
                if first == 0 { return false }
                for _ in first..<segments { path.counters.drop(.sendFailed, network: network) }
                return true
            } else {
                for _ in first...last { path.counters.drop(.sendFailed, network: network) }
            }
            first = last + 1
        }
        return true
    }

    /// Writes the VXLAN header of send slot `slot` and queues `length` frame bytes behind it.
    @inline(__always)
    private func enqueue(slot index: Int, length: Int, vtep: IPv4Address, vni: VNI, network: Int) {
        let slot = buffers.sendSlot(index)
        _ = try? VXLANPacket.build(in: slot, vni: vni)
        let datagram = buffers.send.advanced(by: index)
        datagram.pointee.buffer = slot.baseAddress
        datagram.pointee.length = UInt32(length + VXLANPacket.headerLength)
        datagram.pointee.address = vtep.rawValue
        datagram.pointee.port = configuration.port
        datagram.pointee.flags = UInt16(truncatingIfNeeded: network)
    }

    /// The GSO types the TAP's offloads let the kernel hand over: none, TCPv4 and UDP (USO).
    @inline(__always)
    private static func isSupported(_ type: VirtioNetHeader.GSOType) -> Bool {
        switch type.base {
        case .none, .tcpv4, .udpL4: true
        default: false
        }
    }

    /// Finishes a partial checksum the kernel left for the device (`NEEDS_CSUM`): nobody else
    /// will before the frame crosses the wire. A computed 0 goes out as 0xFFFF, as the kernel's
    /// own `skb_checksum_help` does.
    @inline(__always)
    static func completeChecksum(_ frame: UnsafeMutableRawBufferPointer, _ header: VirtioNetHeader) {
        let start = Int(header.checksumStart), field = start + Int(header.checksumOffset)
        guard field + 2 <= frame.count else { return }
        var sum = InternetChecksum()
        sum.add(UnsafeRawBufferPointer(frame.slice(start, frame.count)))
        let value = sum.value
        frame.storeBigEndian16(value == 0 ? 0xFFFF : value, at: field)
    }

    /// Seconds of the coarse monotonic clock (a vDSO read, no system call).
    private static func monotonicSeconds() -> UInt32 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &time)
        return UInt32(truncatingIfNeeded: time.tv_sec)
    }

    /// Sends the datagrams queued for the underlay in one `sendmmsg` per batch.
    @inline(__always)
    private func flush(_ path: HotPath, pending: inout Int) {
        guard pending > 0 else { return }
        var sent = 0
        // Bounded: each pass sends at least one datagram of at most SHOAL_MAX_BATCH, or stops.
        while sent < pending {
            let count = min(pending - sent, Int(SHOAL_MAX_BATCH))
            let result = socket.send(buffers.send.advanced(by: sent), count: count)
            for index in sent..<(sent + count) {
                // `flags` carried the network index of each queued datagram.
                let datagram = buffers.send[index]
                let network = Int(datagram.flags)
                if index - sent < result {
                    path.counters.add(.datagramsSent, network: network)
                    path.counters.add(.bytesSent, network: network, Int(datagram.length))
                } else {
                    path.counters.drop(.sendFailed, network: network)
                }
            }
            sent += count
        }
        pending = 0
    }

    private func captureFrame(_ frame: UnsafeMutableRawBufferPointer) {
        guard let session = captureSession else { return }
        if !session.record(frame) { hot.captureNetwork = -1 }
    }

    /// Carries out one command; on the packet thread, or on the caller's while no thread runs.
    func perform(_ command: Command) {
        switch command {
        case .install(let installation, let reply):
            if roles.contains(.ports) {
                for descriptor in hot.portDescriptors { epoll_ctl(pollDescriptor, EPOLL_CTL_DEL, descriptor, nil) }
            }
            foldCountersIntoTotals()
            let old = hot
            tables = installation.tables
            networkNames = installation.networks.map { ($0.name, $0.vni) }
            hot = HotPath(
                switch: tables.view, ports: installation.descriptors,
                counters: Counters(networks: installation.networks.count),
                captureNetwork: captureSession.flatMap { session in networkNames.firstIndex { $0.name == session.network } } ?? -1)
            old.deallocate()
            if roles.contains(.ports) {
                for (index, descriptor) in installation.descriptors.enumerated() {
                    do { try register(descriptor, tag: UInt64(index)) } catch {
                        logger.error("cannot poll endpoint", metadata: ["error": "\(error)"])
                    }
                }
            }
            reply.resolve(())
        case .snapshot(let reply):
            reply.resolve(collectStatistics())
        case .startCapture(let session):
            captureSession = session
            hot.captureNetwork = networkNames.firstIndex { $0.name == session.network } ?? -1
        case .stopCapture(let reply):
            hot.captureNetwork = -1
            captureSession = nil
            reply.resolve(())
        case .stop:
            running = false
        }
    }

    private func register(_ descriptor: Int32, tag: UInt64) throws {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = tag
        guard epoll_ctl(pollDescriptor, EPOLL_CTL_ADD, descriptor, &event) == 0 else {
            throw HostNetError("epoll_ctl add", "fd \(descriptor)", errno: errno)
        }
    }

    /// Moves the live counters of the networks being replaced into the cumulative totals.
    private func foldCountersIntoTotals() {
        for (row, network) in networkNames.enumerated() {
            var totals = cumulative[network.name] ?? NetworkStatistics(name: network.name, vni: network.vni.rawValue)
            hot.counters.accumulate(row: row, into: &totals)
            cumulative[network.name] = totals
        }
        hot.counters.accumulateDrops(row: hot.counters.unattributed, into: &cumulativeUnattributed)
    }

    /// This thread's counters, cumulative over every topology it served.
    func collectStatistics() -> OverlayStatistics {
        let networks = networkNames.enumerated().map { row, network in
            var totals = cumulative[network.name] ?? NetworkStatistics(name: network.name, vni: network.vni.rawValue)
            totals.vni = network.vni.rawValue
            hot.counters.accumulate(row: row, into: &totals)
            return totals
        }
        var unattributed = cumulativeUnattributed
        hot.counters.accumulateDrops(row: hot.counters.unattributed, into: &unattributed)
        return OverlayStatistics(networks: networks, unattributedDrops: unattributed)
    }
}

// MARK: - Worker internals

/// Commands cross from a control thread to a packet thread exactly once; whatever they carry
/// is not touched by the sender afterwards (replies excepted, which are built for that).
enum Command: @unchecked Sendable {
    case install(Installation, Reply<Void>)
    case snapshot(Reply<OverlayStatistics>)
    case startCapture(CaptureSession)
    case stopCapture(Reply<Void>)
    case stop
}

struct Installation {
    let tables: ForwardingTables
    let descriptors: [Int32]
    let networks: [OverlayNetwork]
}

/// One capture in progress, shared by the packet threads: the only state they share that is
/// written on the packet path, and only while someone captures, hence the lock.
final class CaptureSession: @unchecked Sendable {
    let network: String
    let done = DispatchSemaphore(value: 0)
    private let state: Mutex<(writer: PcapWriter, remaining: Int, written: Int)>

    init(network: String, writer: PcapWriter, remaining: Int) {
        self.network = network
        state = Mutex((writer, remaining, 0))
    }

    /// Frames written so far.
    var written: Int { state.withLock { $0.written } }

    /// Writes `frame` unless the count is reached; false once it is (and `done` is signalled).
    func record(_ frame: UnsafeMutableRawBufferPointer) -> Bool {
        state.withLock { state in
            guard state.remaining > 0 else { return false }
            state.writer.write(UnsafeRawBufferPointer(frame))
            state.written += 1
            state.remaining -= 1
            if state.remaining == 0 { done.signal() }
            return state.remaining > 0
        }
    }
}

/// A one-shot answer from a packet thread to a waiting caller.
final class Reply<Value>: @unchecked Sendable {
    private var value: Value?
    private let ready = DispatchSemaphore(value: 0)

    func resolve(_ value: Value) {
        self.value = value
        ready.signal()
    }

    func wait() -> Value {
        ready.wait()
        return value!
    }
}
