import Foundation

/// Blocks until SIGINT or SIGTERM arrives, and returns which (daemons stop on either; some
/// treat SIGTERM as the polite one). With `onReload`, SIGHUP calls it (on a serial queue, one
/// reload at a time) and the wait goes on. The one signal wait of every long-running command.
@discardableResult
func waitForTermination(onReload: (@Sendable () -> Void)? = nil) -> Int32 {
    let signals = DispatchQueue(label: "shoal.signals")
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var received: Int32 = 0
    var sources: [DispatchSourceSignal] = []
    for number in [SIGINT, SIGTERM] + (onReload == nil ? [] : [SIGHUP]) {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: signals)
        source.setEventHandler {
            if number == SIGHUP {
                onReload?()
                return
            }
            received = number
            done.signal()
        }
        source.resume()
        sources.append(source)
    }
    done.wait()
    sources.forEach { $0.cancel() }
    return received
}
