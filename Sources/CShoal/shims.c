#define _GNU_SOURCE
#include "CShoal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>

int shoal_tap_open(const char *name, int vnet_hdr, char *name_out) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
    if (name) strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (name_out) {
        memcpy(name_out, ifr.ifr_name, IFNAMSIZ);
        name_out[IFNAMSIZ - 1] = 0;
    }
    return fd;
}

int shoal_tap_set_offload(int fd, unsigned int flags) {
    return ioctl(fd, TUNSETOFFLOAD, flags) < 0 ? -errno : 0;
}

int shoal_tap_set_vnet_header_size(int fd, int size) {
    return ioctl(fd, TUNSETVNETHDRSZ, &size) < 0 ? -errno : 0;
}

int shoal_setns_net(int fd) {
    return setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
}

// iproute2's netns_add(): /run/netns must be a shared mount so that namespaces created here
// are visible to processes in other mount namespaces, and unmounts propagate.
static int ensure_shared_dir(const char *dir) {
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) return -errno;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) == 0) return 0;
        if (errno != EINVAL || attempt == 1) return -errno;
        if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) < 0) return -errno;
    }
    return 0;
}

int shoal_netns_create(const char *dir, const char *name) {
    int rc = ensure_shared_dir(dir);
    if (rc < 0) return rc;
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd < 0) return -errno;
    close(fd);

    int saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved < 0) { rc = -errno; unlink(path); return rc; }
    if (unshare(CLONE_NEWNET) < 0) { rc = -errno; close(saved); unlink(path); return rc; }
    if (mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) < 0) rc = -errno;
    // Returning the thread to its namespace is not optional: a thread of the daemon left in a
    // test namespace would silently send traffic from the wrong place.
    if (setns(saved, CLONE_NEWNET) < 0) {
        perror("shoal: cannot return thread to its network namespace");
        abort();
    }
    close(saved);
    if (rc < 0) unlink(path);
    return rc;
}

int shoal_netns_delete(const char *path) {
    int rc = 0;
    if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) rc = -errno;
    if (unlink(path) < 0 && errno != ENOENT && rc == 0) rc = -errno;
    return rc;
}
