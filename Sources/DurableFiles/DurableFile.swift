// The POSIX file operations that durability depends on, each turned into a `DurableFileError` that
// names the call and the path, and the one atomic write of Shoal (DESIGN.md §8): Raft's
// write-ahead log and snapshots, the daemon's state and keys, lab records and the CLI's files
// all go through `DurableFile.writeAtomically`. Plain system calls rather than Foundation's
// FileHandle: durability depends on exactly which of write, fsync and rename happen, in which
// order.

import Foundation
import Glibc
import Synchronization

/// Numbers the temporary files of atomic writes within this process.
private let temporaryCounter = Atomic<UInt64>(0)

/// Durable file primitives: whole writes and reads, fdatasync, directory fsync, the atomic
/// replace. Every function is safe to call from any thread; none keeps state.
public enum DurableFile {
    /// Opens `path` with `flags` (O_CLOEXEC added) and returns the descriptor.
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o600) throws(DurableFileError) -> Int32 {
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw DurableFileError("open", path, errno: errno) }
        return fd
    }

    /// Writes all of `bytes` at `offset`, retrying short writes and EINTR.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(DurableFileError) {
        var written = 0
        while written < bytes.count {
            let result = pwrite(fd, bytes.baseAddress! + written, bytes.count - written, off_t(offset + written))
            if result < 0 {
                if errno == EINTR { continue }
                throw DurableFileError("write", path, errno: errno)
            }
            written += result
        }
    }

    /// Writes all of `bytes` at `offset`.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(DurableFileError) {
        try withRawBytes(bytes) { (raw) throws(DurableFileError) in try writeAll(fd, raw, at: offset, path: path) }
    }

    /// The whole content of `path`.
    public static func readAll(_ path: String) throws(DurableFileError) -> [UInt8] {
        let fd = try open(path, flags: O_RDONLY)
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw DurableFileError("stat", path, errno: errno) }
        let size = Int(status.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let result = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, size - done, off_t(done)) }
            if result < 0 {
                if errno == EINTR { continue }
                throw DurableFileError("read", path, errno: errno)
            }
            if result == 0 { break }
            done += result
        }
        return Array(bytes.prefix(done))
    }

    /// fdatasync: the data written to `fd` survives a crash from here on.
    public static func sync(_ fd: Int32, path: String) throws(DurableFileError) {
        guard fdatasync(fd) == 0 else { throw DurableFileError("fdatasync", path, errno: errno) }
    }

    /// fsync of a directory: names created, renamed or removed in it survive a crash.
    public static func syncDirectory(_ path: String) throws(DurableFileError) {
        let fd = try open(path, flags: O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw DurableFileError("fsync", path, errno: errno) }
    }

    /// Replaces `path` with `bytes` so that after a crash the file is either its old version
    /// (or absent) or complete: a temporary file beside it, fsync, rename, fsync of the
    /// directory. The directory is created (0700) when missing; the file gets `mode`.
    public static func writeAtomically(_ bytes: UnsafeRawBufferPointer, to path: String, mode: mode_t = 0o600) throws(DurableFileError) {
        let directory = (path as NSString).deletingLastPathComponent
        try makeDirectories(directory.isEmpty ? "." : directory)
        // Unique per process and per call, so two threads replacing one file do not share a
        // temporary; recovery code removes leftovers by the `.tmp.` infix.
        let temporary = "\(path).tmp.\(getpid()).\(temporaryCounter.add(1, ordering: .relaxed).newValue)"
        let fd = try open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
        do throws(DurableFileError) {
            // The mode passed to open is masked by the umask; keys must be exactly `mode`.
            guard fchmod(fd, mode) == 0 else { throw DurableFileError("chmod", temporary, errno: errno) }
            try writeAll(fd, bytes, at: 0, path: temporary)
            guard fsync(fd) == 0 else { throw DurableFileError("fsync", temporary, errno: errno) }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw DurableFileError("rename", path, errno: code)
        }
        try syncDirectory(directory.isEmpty ? "." : directory)
    }

    /// Replaces `path` with `bytes` atomically and durably.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws(DurableFileError) {
        try withRawBytes(bytes) { (raw) throws(DurableFileError) in try writeAtomically(raw, to: path, mode: mode) }
    }

    /// Replaces `path` with `data` atomically and durably.
    public static func writeAtomically(_ data: Data, to path: String, mode: mode_t = 0o600) throws(DurableFileError) {
        try withRawBytes(data) { (raw) throws(DurableFileError) in try writeAtomically(raw, to: path, mode: mode) }
    }

    /// Creates `path` (0700), and its parents, when missing.
    public static func makeDirectories(_ path: String) throws(DurableFileError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return }
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw DurableFileError("create directory", path, errno: (error as NSError).domain == NSPOSIXErrorDomain ? Int32((error as NSError).code) : 0, detail: "\(error)")
        }
    }

    /// The names in `directory` (without `.` and `..`), sorted.
    public static func list(_ directory: String) throws(DurableFileError) -> [String] {
        guard let handle = opendir(directory) else { throw DurableFileError("opendir", directory, errno: errno) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Moves `source` over `destination` by rename(2) (atomic within a directory; fsync the directory
    /// for the new name to survive a crash).
    public static func move(_ source: String, to destination: String) throws(DurableFileError) {
        guard Glibc.rename(source, destination) == 0 else { throw DurableFileError("rename", source, errno: errno) }
    }

    /// Removes `path`; a missing file is not an error.
    public static func remove(_ path: String) throws(DurableFileError) {
        if unlink(path) != 0 && errno != ENOENT { throw DurableFileError("unlink", path, errno: errno) }
    }

    /// Cuts `path` to `size` bytes, durably.
    public static func truncate(_ path: String, to size: Int) throws(DurableFileError) {
        let fd = try open(path, flags: O_WRONLY)
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw DurableFileError("ftruncate", path, errno: errno) }
        try sync(fd, path: path)
    }

    /// `withUnsafeBytes` with the typed error carried through (it only rethrows untyped).
    private static func withRawBytes(
        _ bytes: some ContiguousBytes, _ body: (UnsafeRawBufferPointer) throws(DurableFileError) -> Void
    ) throws(DurableFileError) {
        let failure: DurableFileError? = bytes.withUnsafeBytes { raw in
            do throws(DurableFileError) {
                try body(raw)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }
}

/// A failed system call: what was attempted, on which object (a path, an interface, a
/// namespace), and the errno the kernel (or a library's message) gave back. One type for the
/// file primitives here and HostNet's host operations, which name it `HostNetError`.
public struct SystemCallError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What was attempted, e.g. `fdatasync` or `create veth`.
    public let operation: String
    /// What it was attempted on, e.g. a path or `veth0 in shoal-ab12-n1`.
    public let object: String
    /// The errno, or 0 when the failure did not come with one.
    public let errno: Int32
    /// Extra text from a library (libpcap's error buffer), if any.
    public let detail: String

    /// An error for `operation` on `object`.
    public init(_ operation: String, _ object: String, errno: Int32, detail: String = "") {
        self.operation = operation
        self.object = object
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        var text = "\(operation) \(object): "
        if errno != 0 { text += String(cString: strerror(errno)) + " (errno \(errno))" }
        if !detail.isEmpty { text += (errno != 0 ? ": " : "") + detail }
        return text
    }
}

/// A failed file primitive; its `object` is the path.
public typealias DurableFileError = SystemCallError
