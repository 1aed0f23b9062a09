import Foundation

/// Writes files the way DESIGN.md §8 asks: to a temporary name beside the target, fsync, rename
/// over the target, fsync the directory. A crash leaves either the old file or the new one.
public enum AtomicFile {
    /// Replaces `path` with `data` atomically and durably; creates the directory if needed.
    public static func write(_ data: Data, to path: String) throws(HostNetError) {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw HostNetError("create directory", directory, errno: EACCES, detail: "\(error)")
        }
        let temporary = "\(path).tmp.\(getpid())"
        let descriptor = try checkErrno(open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644), "create", temporary)
        var failure: HostNetError?
        data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = HostNetError("write", temporary, errno: errno)
                    return
                }
                offset += written
            }
        }
        if failure == nil, fsync(descriptor) != 0 { failure = HostNetError("fsync", temporary, errno: errno) }
        close(descriptor)
        if let failure {
            unlink(temporary)
            throw failure
        }
        if rename(temporary, path) != 0 {
            let code = errno
            unlink(temporary)
            throw HostNetError("rename", path, errno: code)
        }
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }
}
