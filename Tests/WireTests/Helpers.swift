import Foundation
import HostNet
import Wire

/// Frames captured from two Linux kernel vxlan devices (see Fixtures/capture-vxlan.sh).
func kernelVXLANFrames() throws -> [[UInt8]] {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/kernel-vxlan.pcap").path
    return try PcapReader(path: path).readAll().map(\.bytes)
}

/// Runs `body` with a mutable copy of `bytes`.
func withBuffer<T>(_ bytes: [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws -> T) rethrows -> T {
    var copy = bytes
    return try copy.withUnsafeMutableBytes { try body($0) }
}

/// Runs a parse on a mutable copy of `bytes` and returns the error it threw, if any.
func parseError(_ bytes: [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(WireError) -> Void) -> WireError? {
    var copy = bytes
    return copy.withUnsafeMutableBytes { buffer in wireError { () throws(WireError) in try body(buffer) } }
}

/// Runs `body` and returns the error it threw, if any.
func wireError(_ body: () throws(WireError) -> Void) -> WireError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}
