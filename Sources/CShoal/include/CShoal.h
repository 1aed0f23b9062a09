// C shims for the few host calls Swift cannot make directly: the variadic ioctl() of TUN/TAP,
// and the namespace dance (unshare + bind mount + setns) that must run without a Swift
// suspension point in between. Everything else is called from Swift.
#ifndef CSHOAL_H
#define CSHOAL_H

#include <stdint.h>
#include <sys/types.h>

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

#endif
