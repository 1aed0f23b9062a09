import Framing
import NIOCore
import NIOEmbedded
import Testing

/// The shared stream framing: frames split across reads, a huge prefix refused before its
/// body arrives, a connection cut mid-frame counted.
@Suite struct LengthPrefixedFramingTests {
    private func channel(limit: Int, counters: FrameDropCounters) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try LengthPrefixedFraming.add(to: channel.pipeline.syncOperations, limit: limit, counters: counters)
        return channel
    }

    private func frame(_ body: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(body.count))
        buffer.writeBytes(body)
        return buffer
    }

    @Test func splitsFramesWhateverTheReadBoundaries() throws {
        let counters = FrameDropCounters()
        let channel = try channel(limit: 64, counters: counters)
        var stream = frame([1, 2, 3])
        stream.writeImmutableBuffer(frame([]))
        stream.writeImmutableBuffer(frame(Array(repeating: 9, count: 64)))
        let bytes = Array(stream.readableBytesView)
        for byte in bytes { try channel.writeInbound(ByteBuffer(bytes: [byte])) }
        #expect(try channel.readInbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == [1, 2, 3])
        #expect(try channel.readInbound(as: ByteBuffer.self)?.readableBytes == 0)
        #expect(try channel.readInbound(as: ByteBuffer.self)?.readableBytes == 64)
        #expect(counters.oversized == 0 && counters.truncated == 0)
        _ = try channel.finish()
    }

    @Test func refusesAHugePrefixAtOnceAndCountsIt() throws {
        let counters = FrameDropCounters()
        let channel = try channel(limit: 1 << 20, counters: counters)
        var prefix = ByteBuffer()
        prefix.writeInteger(UInt32(1 << 30))  // 1 GiB announced, four bytes sent
        #expect(throws: FrameTooLarge.self) { try channel.writeInbound(prefix) }
        #expect(counters.oversized == 1)
        _ = try? channel.finish()
    }

    @Test func countsAConnectionCutMidFrame() throws {
        let counters = FrameDropCounters()
        let channel = try channel(limit: 64, counters: counters)
        var cut = frame([1, 2, 3])
        cut.writeImmutableBuffer(frame([4, 5, 6, 7]))
        cut.moveWriterIndex(to: cut.writerIndex - 2)
        try channel.writeInbound(cut)
        _ = try channel.finish(acceptAlreadyClosed: true)
        #expect(counters.truncated == 1)
    }

    @Test func prefixesOutboundBuffers() throws {
        let channel = try channel(limit: 64, counters: FrameDropCounters())
        try channel.writeOutbound(ByteBuffer(bytes: [7, 8]))
        var written = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { written.writeBuffer(&part) }
        #expect(Array(written.readableBytesView) == [0, 0, 0, 2, 7, 8])
        _ = try channel.finish()
    }
}
