import Foundation
import HostNet
import Lab
import Overlay
import Testing
import Wire

/// Bytes moved per direction between two Shoal endpoints: enough for many 64 KiB super-frames
/// through segmentation, UDP GSO/GRO and coalescing.
let bulkTransferBytes = 256 << 20
/// Bytes moved per transfer in the test mixed with the kernel's vxlan device (four transfers).
let kernelTransferBytes = 128 << 20

/// A bulk TCP transfer by two python3 processes: the receiver listens on the destination's
/// overlay address and hashes what it reads until EOF; the sender streams deterministic
/// pseudo-random bytes (seeded by the port) and hashes what it sends. Each prints
/// `<bytecount> <sha256hex>`, so equal lines mean every byte arrived intact and in order.
struct BulkTransfer {
    /// How long the sender may take, in seconds: debug builds of the engine move only a few
    /// hundred Mbit/s.
    static let timeoutSeconds = 180.0

    /// The receiver (`receive`) and the sender (`send`); arguments: role, address, port, bytes.
    /// The sender varies each 1 MiB chunk of one 4 MiB random block by a chunk counter and a
    /// moving offset, so the stream repeats at no 64 KiB boundary and costs Python nothing.
    static let script = """
        import hashlib, random, socket, struct, sys
        role, host, port, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        digest, count = hashlib.sha256(), 0
        if role == "receive":
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(1)
            listener.settimeout(120)
            print("listening", flush=True)
            connection, _ = listener.accept()
            connection.settimeout(120)
            buffer = bytearray(1 << 20)
            view = memoryview(buffer)
            while True:
                received = connection.recv_into(buffer)
                if received == 0:
                    break
                digest.update(view[:received])
                count += received
            connection.close()
        else:
            chunk = 1 << 20
            block = random.Random(port).randbytes(4 * chunk)
            connection = socket.create_connection((host, port), timeout=120)
            index = 0
            while count < total:
                size = min(chunk, total - count)
                start = (index * 65537) % (len(block) - chunk)
                data = (struct.pack("<Q", index) + block[start:start + size])[:size]
                connection.sendall(data)
                digest.update(data)
                count += size
                index += 1
            connection.shutdown(socket.SHUT_WR)
            connection.recv(1)  # EOF once the receiver has read everything and closed
            connection.close()
        print(count, digest.hexdigest(), flush=True)
        """

    let bytes: Int
    let label: String
    let receiver: NamespacedProcess
    let sender: NamespacedProcess

    /// Starts the receiver on `address`:`port` in `destination`, waits until it listens, then
    /// starts the sender of `bytes` bytes in `source`.
    init(bytes: Int, from source: NetworkNamespace, to destination: NetworkNamespace, at address: IPv4Address, port: UInt16) throws {
        let label = "\(bytes) bytes from \(source) to \(address):\(port)"
        let arguments = ["python3", "-c", Self.script]
        let parameters = ["\(address)", "\(port)", "\(bytes)"]
        let receiver = try NamespacedProcess(arguments + ["receive"] + parameters, in: destination)
        let ready = try receiver.readLine(timeoutSeconds: 20)
        try #require(ready == "listening", "receiver of \(label) did not start: \(ready ?? "no output")")
        self.sender = try NamespacedProcess(arguments + ["send"] + parameters, in: source)
        self.receiver = receiver
        self.bytes = bytes
        self.label = label
    }

    /// Waits for both ends (bounded), expects equal `<bytecount> <sha256hex>` lines with the
    /// full byte count, and returns the two lines.
    @discardableResult
    func finish() -> (sent: String, received: String) {
        let sent = sender.wait(timeoutSeconds: Self.timeoutSeconds)
        let received = receiver.wait(timeoutSeconds: 15)
        #expect(sent.status == 0 && !sent.timedOut, "sender of \(label): \(sent.output.suffix(1500))")
        #expect(received.status == 0 && !received.timedOut, "receiver of \(label): \(received.output.suffix(1500))")
        let lines = (sent: sent.output.trimmingCharacters(in: .whitespacesAndNewlines),
                     received: received.output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(lines.sent.hasPrefix("\(bytes) "), "sender of \(label) reported \(lines.sent)")
        #expect(lines.received == lines.sent, "\(label): received \(lines.received), sent \(lines.sent)")
        return lines
    }
}

extension OverlayLab {
    /// One bulk transfer of `bytes` from `source` to the receiver at `address`:`port` in
    /// `destination`, start to finish; see ``BulkTransfer``.
    @discardableResult
    func transfer(bytes: Int, from source: NetworkNamespace, to destination: NetworkNamespace, at address: IPv4Address,
                  port: UInt16) throws -> (sent: String, received: String) {
        try BulkTransfer(bytes: bytes, from: source, to: destination, at: address, port: port).finish()
    }
}

extension OverlayRootTests {
    /// Two nodes, one endpoint each, one engine with a single packet thread and one with a
    /// thread per direction: hundreds of MB each way, then both ways at once, arrive byte for byte (sha256 of what was sent equals that of what was received) through software
    /// TSO, UDP GSO/GRO and coalescing; no frame was malformed along the way.
    @Test func bulkTransfersArriveIntactBothWays() throws {
        try withOverlayLab(nodes: 2) { overlay in
            let (n1, n2) = (overlay.lab.nodes[0], overlay.lab.nodes[1])
            // One packet thread on node 1, one per direction on node 2: both engine shapes.
            _ = try overlay.engine(on: n1, threads: 1)
            _ = try overlay.engine(on: n2, threads: 2)
            let (e1, e2, a1, a2) = try overlay.endpointPair(suffix: "bulk")

            try overlay.transfer(bytes: bulkTransferBytes, from: e1, to: e2, at: a2, port: 41001)
            try overlay.transfer(bytes: bulkTransferBytes, from: e2, to: e1, at: a1, port: 41002)
            // Both directions at the same time: data segments and ACKs of the other flow share
            // every batch on both engines.
            let there = try BulkTransfer(bytes: bulkTransferBytes, from: e1, to: e2, at: a2, port: 41003)
            let back = try BulkTransfer(bytes: bulkTransferBytes, from: e2, to: e1, at: a1, port: 41004)
            there.finish()
            back.finish()

            for node in [n1, n2] {
                let statistics = try overlay.engine(on: node).statistics()
                #expect(statistics.drops(.malformedFrame) == 0, "\(node.name): \(statistics.network("blue")?.drops ?? [:])")
            }
        }
    }

    /// Three nodes: two Shoal endpoints (node 2 without UDP GSO) and the kernel's vxlan device,
    /// which sends plain MTU-sized datagrams. Shoal's node 1 takes bulk transfers from both at once, so
    /// its receive batches mix GRO'd and single datagrams, then sends to both at once; every
    /// transfer arrives byte for byte.
    @Test func bulkTransfersMixedWithTheKernelVXLANDeviceArriveIntact() throws {
        try withOverlayLab(nodes: 3) { overlay in
            let (n1, n2, kernelNode) = (overlay.lab.nodes[0], overlay.lab.nodes[1], overlay.lab.nodes[2])
            let e1 = try overlay.lab.addNamespace(on: n1, suffix: "mix1")
            let e2 = try overlay.lab.addNamespace(on: n2, suffix: "mix2")
            let a1 = IPv4Address(10, 20, 0, 2), a2 = IPv4Address(10, 20, 0, 3), kernelAddress = IPv4Address(10, 20, 0, 9)
            let engine = try overlay.engine(on: n1)
            // Node 2 sends its segments as separate datagrams (the sendmmsg fallback for
            // kernels without UDP GSO), so node 1 also receives uncoalesced Shoal traffic.
            _ = try overlay.engine(on: n2, sendOffload: false)
            try engine.apply(Topology(
                networks: [blue], localEndpoints: [LocalEndpoint(network: "blue", address: a1, namespace: e1.name)],
                remoteEndpoints: [RemoteEndpoint(network: "blue", address: a2, vtep: n2.underlayAddress),
                                  RemoteEndpoint(network: "blue", address: kernelAddress, vtep: kernelNode.underlayAddress)]))
            try overlay.engine(on: n2).apply(Topology(
                networks: [blue], localEndpoints: [LocalEndpoint(network: "blue", address: a2, namespace: e2.name)],
                remoteEndpoints: [RemoteEndpoint(network: "blue", address: a1, vtep: n1.underlayAddress)]))
            try overlay.addKernelVXLAN(on: kernelNode, address: kernelAddress, peers: [(a1, n1.underlayAddress)])

            let fromKernel = try BulkTransfer(bytes: kernelTransferBytes, from: kernelNode.namespace, to: e1, at: a1, port: 41011)
            let fromShoal = try BulkTransfer(bytes: kernelTransferBytes, from: e2, to: e1, at: a1, port: 41012)
            fromKernel.finish()
            fromShoal.finish()
            let toKernel = try BulkTransfer(bytes: kernelTransferBytes, from: e1, to: kernelNode.namespace, at: kernelAddress, port: 41013)
            let toShoal = try BulkTransfer(bytes: kernelTransferBytes, from: e1, to: e2, at: a2, port: 41014)
            toKernel.finish()
            toShoal.finish()

            let statistics = engine.statistics()
            #expect(statistics.drops(.malformedFrame) == 0, "\(statistics.network("blue")?.drops ?? [:])")
        }
    }
}

extension OverlayRootTests {
    /// An application that sends with UDP_SEGMENT (as QUIC stacks do) hands the TAP one UDP
    /// super-frame per call (USO); the engine splits it into whole datagrams that arrive
    /// intact, in order, one per segment, at a remote endpoint.
    @Test func udpSegmentationOffloadSplitsIntoWholeDatagrams() throws {
        // Sender: 20 sendmsg calls of 10 segments of 1400 bytes each, every segment tagged
        // with its number. Receiver: counts datagrams, checks size and content of each.
        let script = """
            import socket, sys
            role, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
            def segment(n): return n.to_bytes(4, "big") * 350
            if role == "receive":
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                # Room for the whole burst: on a loaded machine this process may not run
                # until every datagram has arrived (SO_RCVBUFFORCE, as root, past rmem_max).
                s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)
                s.bind((host, port))
                s.settimeout(10)
                print("listening", flush=True)
                good, count = 0, 0
                try:
                    for n in range(200):
                        data = s.recv(65536)
                        count += 1
                        good += data == segment(n)
                except socket.timeout:
                    pass
                print("received", good, "of", count, flush=True)
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_UDP, 103, 1400)  # UDP_SEGMENT
                for call in range(20):
                    s.sendto(b"".join(segment(call * 10 + i) for i in range(10)), (host, port))
                print("sent", flush=True)
            """
        try withOverlayLab(nodes: 2) { overlay in
            let n1 = overlay.lab.nodes[0]
            let (e1, e2, _, a2) = try overlay.endpointPair(suffix: "uso")
            let engine = try overlay.engine(on: n1)
            // Resolve the peer first, so that no datagram waits on ARP.
            #expect(try overlay.run(["ping", "-c", "1", "-W", "2", "\(a2)"], in: e1).status == 0)
            let before = try #require(engine.statistics().network("blue"))

            let receiver = try NamespacedProcess(["python3", "-c", script, "receive", "\(a2)", "42001"], in: e2)
            try #require(try receiver.readLine(timeoutSeconds: 20) == "listening")
            let sender = try overlay.run(["python3", "-c", script, "send", "\(a2)", "42001"], in: e1)
            #expect(sender.status == 0, "\(sender.output)")
            let received = receiver.wait(timeoutSeconds: 20)
            let afterReceive = engine.statistics()
            let peer = try overlay.engine(on: overlay.lab.nodes[1]).statistics()
            #expect(received.output.contains("received 200 of 200"),
                    "\(received.output); sender drops \(afterReceive.network("blue")?.drops ?? [:]), receiver drops \(peer.network("blue")?.drops ?? [:])")

            let after = try #require(engine.statistics().network("blue"))
            let frames = after.framesFromEndpoints - before.framesFromEndpoints
            let datagrams = after.datagramsSent - before.datagramsSent
            #expect(datagrams >= 200 && frames < 50, "USO not in effect: \(frames) frames from the endpoint, \(datagrams) datagrams sent")
        }
    }
}
