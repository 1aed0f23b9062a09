// The one stream framing of Shoal's own TCP protocols (gossip push/pull on 7946, Raft on 2377):
// a 32-bit big-endian length, then that many bytes. The outbound side is NIOExtras'
// `LengthFieldPrepender`. The inbound side is a small decoder of our own rather than NIOExtras'
// `LengthFieldBasedFrameDecoder`: that one consumes the prefix before the body has arrived and
// keeps it as private state, so nothing outside it can check the announced length, and it
// has no limit of its own. Ours peeks at the prefix and refuses a length over the limit at
// once (a 1 GiB prefix costs four bytes, not a gigabyte of buffer), leaves the bytes in place
// until the whole frame is there, and counts what it dropped for its owner's statistics.

import NIOCore
import NIOExtras
import Synchronization

/// What the framing dropped on the connections that share one ``FrameDropCounters``.
/// Thread-safe: channels on any event loop count into it.
public final class FrameDropCounters: Sendable {
    private let oversizedCount = Atomic<Int>(0)
    private let truncatedCount = Atomic<Int>(0)

    /// Counters at zero.
    public init() {}

    /// Frames whose length prefix was over the limit (each also closed its connection).
    public var oversized: Int { oversizedCount.load(ordering: .relaxed) }
    /// Connections that ended in the middle of a frame.
    public var truncated: Int { truncatedCount.load(ordering: .relaxed) }

    fileprivate func countOversized() { oversizedCount.add(1, ordering: .relaxed) }
    fileprivate func countTruncated() { truncatedCount.add(1, ordering: .relaxed) }
}

/// A frame's length prefix is over the limit; the connection is closed by whoever catches it.
public struct FrameTooLarge: Error, Sendable, CustomStringConvertible {
    /// The length the prefix announced.
    public var length: Int
    /// The largest length accepted.
    public var limit: Int

    public var description: String { "frame of \(length) bytes is over the \(limit)-byte limit" }
}

/// Splits a stream into length-prefixed frames (the prefix removed), refusing any length over
/// `limit` before reading its body and counting a connection that ends mid-frame.
public struct LengthPrefixedFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    private let limit: Int
    private let counters: FrameDropCounters

    /// A decoder for frames of at most `limit` bytes, counting drops into `counters`.
    public init(limit: Int, counters: FrameDropCounters) {
        self.limit = limit
        self.counters = counters
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map(Int.init) else { return .needMoreData }
        guard length <= limit else {
            counters.countOversized()
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            throw FrameTooLarge(length: length, limit: limit)
        }
        guard buffer.readableBytes >= 4 + length else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: length)!))
        return .continue
    }

    /// The connection ended: whole frames are still delivered, a partial one is counted.
    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while buffer.readableBytes > 0, try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            counters.countTruncated()
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        }
        return .needMoreData
    }
}

/// Adds the framing to a channel: inbound frames of at most `limit` bytes, outbound buffers
/// prefixed with their length. Call on the channel's event loop.
public enum LengthPrefixedFraming {
    /// Adds decoder and prepender to `pipeline`, before the handlers that read frames.
    public static func add(to pipeline: ChannelPipeline.SynchronousOperations, limit: Int, counters: FrameDropCounters) throws {
        try pipeline.addHandler(ByteToMessageHandler(LengthPrefixedFrameDecoder(limit: limit, counters: counters)))
        try pipeline.addHandler(LengthFieldPrepender(lengthFieldBitLength: .fourBytes))
    }
}
