import Foundation

/// Blocks until SIGINT or SIGTERM arrives, and returns which (daemons stop on either; some
/// treat SIGTERM as the polite one).
@discardableResult
func waitForTermination() -> Int32 {
    let signals = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var received: Int32 = 0
    var sources: [DispatchSourceSignal] = []
    for number in [SIGINT, SIGTERM] {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            received = number
            signals.signal()
        }
        source.resume()
        sources.append(source)
    }
    signals.wait()
    sources.forEach { $0.cancel() }
    return received
}
