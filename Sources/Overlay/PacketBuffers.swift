import CShoal
import Glibc
import Wire

/// What a wake-up of a packet thread reads: all trivial, so copying it costs nothing.
struct HotPath {
    var `switch`: Switch
    let ports: UnsafeMutablePointer<Int32>
    let portCount: Int
    let counters: Counters
    var captureNetwork: Int

    init(switch: Switch, ports descriptors: [Int32], counters: Counters, captureNetwork: Int) {
        self.switch = `switch`
        ports = .allocate(capacity: max(1, descriptors.count))
        ports.initialize(from: descriptors, count: descriptors.count)
        portCount = descriptors.count
        self.counters = counters
        self.captureNetwork = captureNetwork
    }

    var portDescriptors: UnsafeBufferPointer<Int32> { UnsafeBufferPointer(start: ports, count: portCount) }

    func deallocate() {
        ports.deallocate()
        counters.deallocate()
    }
}

/// Preallocated buffers: one receive batch of datagrams, the send slots for a `sendmmsg` batch,
/// one TAP read, the header slots and gather vectors of one segmented super-frame, and the
/// software-GRO output. Nothing on the packet path allocates.
struct PacketBuffers {
    /// The largest overlay MTU whose frames, behind a VXLAN header, fit a send slot.
    static let maximumMTU = 2048 - VXLANPacket.headerLength - EthernetFrame.headerLength

    let batchSize: Int
    let slotSize: Int
    /// Send slots for the `sendmmsg` path: a segmented 64 KiB super-frame takes 47 of them at
    /// MSS 1398; one that needs more than all of them (an MSS under 260) is dropped and counted
    /// there, which only a kernel without UDP GSO ever reaches.
    let sendCapacity = 2 * Int(SHOAL_MAX_BATCH)
    /// A send slot holds one VXLAN header and one MTU-sized frame (see ``maximumMTU``).
    let sendSlotSize = 2048
    let receive: UnsafeMutablePointer<shoal_datagram>
    let send: UnsafeMutablePointer<shoal_datagram>
    /// One TAP read: a virtio-net header and a frame of up to 64 KiB.
    let tapRead: UnsafeMutableRawBufferPointer
    let segmentLengths: UnsafeMutablePointer<Int>
    /// How many frames bound for local endpoints are gathered before they are coalesced and
    /// written: a receive batch may carry far more (64 KiB per slot with UDP GRO).
    let deliveryCapacity = Int(SHOAL_MAX_BATCH)
    /// Frames of the current receive batch bound for local endpoints, and for which.
    let deliveryFrames: UnsafeMutablePointer<UnsafeMutableRawBufferPointer>
    let deliveryPorts: UnsafeMutablePointer<Int>
    let gatherFrames: UnsafeMutablePointer<UnsafeMutableRawBufferPointer>
    let coalesced: UnsafeMutableRawBufferPointer
    let coalescedResults: UnsafeMutableBufferPointer<CoalescedFrame>
    /// The most segments one super-frame can make: 64 KiB at the smallest MSS a Linux peer may
    /// impose (`tcp_min_snd_mss`, 48).
    let segmentCapacity = 1400
    /// Per segment of one super-frame sent with UDP GSO: a slot for its VXLAN header and its
    /// Ethernet/IPv4/TCP headers (at most 8 + 14 + 20 + 60 bytes), where its payload lies in
    /// the TAP read, and the two gather vectors of its datagram.
    let segmentHeaderSlotSize = 128
    let segmentHeaders: UnsafeMutableRawBufferPointer
    let segmentPayloads: UnsafeMutableBufferPointer<Range<Int>>
    let segmentVectors: UnsafeMutablePointer<iovec>
    private let sendSlots: UnsafeMutableRawPointer
    private let receiveSlots: UnsafeMutableRawPointer

    init(batchSize: Int, slotSize: Int) {
        self.batchSize = batchSize
        self.slotSize = slotSize
        receiveSlots = .allocate(byteCount: batchSize * slotSize, alignment: 64)
        sendSlots = .allocate(byteCount: sendCapacity * sendSlotSize, alignment: 64)
        receive = .allocate(capacity: batchSize)
        send = .allocate(capacity: sendCapacity)
        for index in 0..<batchSize {
            receive[index] = shoal_datagram(
                buffer: receiveSlots + index * slotSize, length: UInt32(slotSize), address: 0, port: 0, flags: 0,
                segment_size: 0)
        }
        for index in 0..<sendCapacity {
            send[index] = shoal_datagram(buffer: nil, length: 0, address: 0, port: 0, flags: 0, segment_size: 0)
        }
        tapRead = .allocate(byteCount: VirtioNetHeader.length + 65536, alignment: 64)
        segmentLengths = .allocate(capacity: sendCapacity)
        deliveryFrames = .allocate(capacity: deliveryCapacity)
        deliveryPorts = .allocate(capacity: deliveryCapacity)
        gatherFrames = .allocate(capacity: deliveryCapacity)
        // Every delivered frame is at most the MTU (the switch drops larger ones), plus its header.
        coalesced = .allocate(byteCount: deliveryCapacity * (VirtioNetHeader.length + sendSlotSize), alignment: 64)
        coalescedResults = .allocate(capacity: deliveryCapacity)
        segmentHeaders = .allocate(byteCount: segmentCapacity * segmentHeaderSlotSize, alignment: 64)
        segmentPayloads = .allocate(capacity: segmentCapacity)
        segmentPayloads.initialize(repeating: 0..<0)
        segmentVectors = .allocate(capacity: 2 * segmentCapacity)
    }

    /// Frees everything; the worker's thread has stopped.
    func deallocate() {
        receiveSlots.deallocate()
        sendSlots.deallocate()
        receive.deallocate()
        send.deallocate()
        tapRead.deallocate()
        segmentLengths.deallocate()
        deliveryFrames.deallocate()
        deliveryPorts.deallocate()
        gatherFrames.deallocate()
        coalesced.deallocate()
        coalescedResults.deallocate()
        segmentHeaders.deallocate()
        segmentPayloads.deallocate()
        segmentVectors.deallocate()
    }

    /// Send slot `index`: a VXLAN header's room, then the frame.
    @inline(__always)
    func sendSlot(_ index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: sendSlots + index * sendSlotSize, count: sendSlotSize)
    }

    /// The send slots from `index` to the last, as one region.
    @inline(__always)
    func sendRegion(from index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: sendSlots + index * sendSlotSize, count: (sendCapacity - index) * sendSlotSize)
    }
}
