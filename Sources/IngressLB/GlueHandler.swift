import NIOCore

/// One side of a spliced pair of channels: what one reads, the other writes, with
/// back-pressure (a side reads only while its partner can write) and half-closes passed on.
/// Both channels must share one event loop: the partners call each other synchronously.
/// Written after SwiftNIO's own `GlueHandler` example (NIO ships no TCP relay handler).
///
/// An end of stream is passed on only after everything read before it has been written: a
/// closing side may leave bytes queued in its partner (the partner's peer reads slower), and
/// NIO fails queued writes when a channel closes fully — also when a half-close finds the
/// input already shut and escalates to a full one.
final class GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    private init() {}

    /// Two handlers that relay to each other.
    static func matchedPair() -> (GlueHandler, GlueHandler) {
        let first = GlueHandler(), second = GlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.context?.write(data, promise: nil) }

    func channelReadComplete(context: ChannelHandlerContext) { partner?.context?.flush() }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.closeAfterQueuedWrites(mode: .all)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            // The peer finished sending: finish sending to the other side too.
            partner?.closeAfterQueuedWrites(mode: .output)
        }
        context.fireUserInboundEventTriggered(event)
    }

    // An error (a reset, most often) is passed on at once: there is no orderly end to keep.
    func errorCaught(context: ChannelHandlerContext, error: Error) { partner?.context?.close(promise: nil) }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if partner?.context?.channel.isWritable ?? false {
            context.read()
        } else {
            pendingRead = true
        }
    }

    private func partnerBecameWritable() {
        guard pendingRead else { return }
        pendingRead = false
        context?.read()
    }

    /// Closes this side once the bytes already queued on it are written: an empty write
    /// completes after every write before it.
    private func closeAfterQueuedWrites(mode: CloseMode) {
        guard let context else { return }
        let channel = context.channel
        context.writeAndFlush(NIOAny(ByteBuffer())).whenComplete { _ in channel.close(mode: mode, promise: nil) }
    }
}
