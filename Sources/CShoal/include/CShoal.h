// C shims for the few host calls Swift cannot make directly: the variadic ioctl() of TUN/TAP,
// and the namespace dance (unshare + bind mount + setns) that must run without a Swift
// suspension point in between. Everything else is called from Swift.
#ifndef CSHOAL_H
#define CSHOAL_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/uio.h>

/// Opens /dev/net/tun and attaches a TAP device named `name` (IFF_TAP|IFF_NO_PI, plus
/// IFF_VNET_HDR when `vnet_hdr` is non-zero) in the network namespace of the calling thread.
/// Writes the kernel's final name into `name_out` (at least 16 bytes). Returns the file
/// descriptor, or -errno.
int shoal_tap_open(const char *name, int vnet_hdr, char *name_out);

/// TUNSETOFFLOAD on a TAP fd. Returns 0 or -errno.
int shoal_tap_set_offload(int fd, unsigned int flags);

/// TUNSETVNETHDRSZ on a TAP fd. Returns 0 or -errno.
int shoal_tap_set_vnet_header_size(int fd, int size);

/// setns(fd, CLONE_NEWNET). Returns 0 or -errno.
int shoal_setns_net(int fd);

/// Creates a named network namespace the way iproute2 does (`ip netns add`): makes sure
/// `dir` is a shared mount point, creates `dir/name`, unshares a new network namespace on
/// the calling thread, bind-mounts it onto the file, and returns the thread to the namespace
/// it was in. Returns 0 or -errno; on failure nothing is left behind.
int shoal_netns_create(const char *dir, const char *name);

/// Unmounts and removes a named network namespace file. Returns 0 or -errno.
int shoal_netns_delete(const char *path);


/// What the sandbox launcher sets up for a task's process (sandbox.c).
typedef struct {
    /// Descriptor of the task's network namespace, or -1 to stay in the caller's.
    int netns_fd;
    /// The UTS hostname, or NULL.
    const char *hostname;
    /// Files bind-mounted over others inside the task's mount namespace (/etc/resolv.conf...).
    const char *const *bind_sources;
    const char *const *bind_targets;
    int bind_count;
    /// cgroup.procs files the process joins before anything else.
    const char *const *cgroup_procs;
    int cgroup_count;
    /// Working directory, or NULL.
    const char *workdir;
    /// Standard input, output and error of the process.
    int stdin_fd, stdout_fd, stderr_fd;
    /// Non-zero for a new PID namespace with its own /proc; the launched process stays as its
    /// init (PID 1: forwards signals, reaps orphans, exits with the command's status) and the
    /// command runs as its child.
    int new_pid_namespace;
    /// NULL-terminated argument and environment vectors; argv[0] is searched in PATH.
    char *const *argv;
    char *const *envp;
} shoal_sandbox_spec;

/// Starts a process as `spec` says, in new mount and UTS namespaces. Returns its pid once it
/// has exec'd, or -1 with the errno in `error_out` and the failing step in `step_out`
/// (1 signal mask, 2 cgroup, 3 network namespace, 4 private mounts, 5 bind mount, 6 hostname,
/// 7 standard streams, 8 working directory, 9 session, 10 exec, 11 mount /proc, 12 fork the
/// command under the namespace's init; 0 for clone itself).
pid_t shoal_sandbox_spawn(const shoal_sandbox_spec *spec, int *error_out, int *step_out);

#endif

/// One datagram of a batch: the caller's buffer, its length, and the peer (IPv4, host order).
typedef struct {
    void *buffer;
    uint32_t length;     // in: bytes to send / capacity to receive; out (receive): bytes received
    uint32_t address;    // peer IPv4 address, host byte order
    uint16_t port;       // peer port, host byte order
    uint16_t flags;      // out (receive): 1 when the datagram was truncated
    uint16_t segment_size; // out (receive): with UDP_GRO, the size of each coalesced datagram
                           // but the last (0: one datagram)
} shoal_datagram;

/// The largest batch the helpers below take in one call.
#define SHOAL_MAX_BATCH 128

/// recvmmsg() without blocking into `datagrams[0..<count]`. Returns the number received
/// (0 when none is waiting) or -errno. On a socket with UDP_GRO one buffer may hold several
/// datagrams of one sender back to back; `segment_size` then says where they split.
int shoal_udp_receive_batch(int fd, shoal_datagram *datagrams, int count);

/// sendmmsg() of `datagrams[0..<count]`, retried until all are taken or an error occurs.
/// Returns the number sent or -errno when none was.
int shoal_udp_send_batch(int fd, const shoal_datagram *datagrams, int count);

/// Creates a UDP socket bound to address:port (host order), non-blocking, with large buffers,
/// and with UDP_GRO when `gro` is non-zero and the kernel has it. Returns the fd or -errno.
int shoal_udp_bind(uint32_t address, uint16_t port, int buffer_bytes, int gro);

/// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC). Returns the fd or -errno.
int shoal_eventfd(void);

/// Adds 1 to an eventfd (wakes a poller). Returns 0 or -errno.
int shoal_eventfd_signal(int fd);

/// Resets an eventfd to 0. Returns 0 or -errno.
int shoal_eventfd_drain(int fd);

/// sendmsg() of the bytes gathered from `vectors[0..<count]`, which are consecutive datagrams
/// of `segment_size` bytes (the last may be shorter; a datagram may span several vectors), to
/// address:port in one call with UDP_SEGMENT (UDP GSO): the kernel cuts them apart as late as
/// it can. Returns the bytes sent or -errno (EIO or EINVAL where the kernel or device cannot).
int shoal_udp_send_segmented(int fd, const struct iovec *vectors, int count, uint32_t address, uint16_t port,
                             uint16_t segment_size);
