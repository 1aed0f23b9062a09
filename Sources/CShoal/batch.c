#define _GNU_SOURCE
#include "CShoal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// mmsghdr arrays live on the stack: a batch costs no allocation.

// Points message i at datagram i's buffer and at peer slot i (filled by the caller to send).
static void prepare(struct mmsghdr *messages, struct iovec *vectors, struct sockaddr_in *peers,
                    const shoal_datagram *datagrams, int count) {
    for (int i = 0; i < count; i++) {
        vectors[i].iov_base = datagrams[i].buffer;
        vectors[i].iov_len = datagrams[i].length;
        memset(&messages[i].msg_hdr, 0, sizeof(messages[i].msg_hdr));
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_name = &peers[i];
        messages[i].msg_hdr.msg_namelen = sizeof(peers[i]);
    }
}

#include <netinet/udp.h>
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

// Room for the one control message a UDP_GRO socket attaches: the coalesced datagram size.
typedef union {
    char bytes[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
} gro_control;

int shoal_udp_receive_batch(int fd, shoal_datagram *datagrams, int count) {
    if (count > SHOAL_MAX_BATCH) count = SHOAL_MAX_BATCH;
    struct mmsghdr messages[SHOAL_MAX_BATCH];
    struct iovec vectors[SHOAL_MAX_BATCH];
    struct sockaddr_in peers[SHOAL_MAX_BATCH];
    gro_control controls[SHOAL_MAX_BATCH];
    prepare(messages, vectors, peers, datagrams, count);
    for (int i = 0; i < count; i++) {
        messages[i].msg_hdr.msg_control = controls[i].bytes;
        messages[i].msg_hdr.msg_controllen = sizeof(controls[i].bytes);
    }
    int received;
    do {
        received = recvmmsg(fd, messages, (unsigned)count, MSG_DONTWAIT, NULL);
    } while (received < 0 && errno == EINTR);
    if (received < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    for (int i = 0; i < received; i++) {
        datagrams[i].length = messages[i].msg_len;
        datagrams[i].address = ntohl(peers[i].sin_addr.s_addr);
        datagrams[i].port = ntohs(peers[i].sin_port);
        datagrams[i].flags = (messages[i].msg_hdr.msg_flags & MSG_TRUNC) ? 1 : 0;
        datagrams[i].segment_size = 0;
        for (struct cmsghdr *header = CMSG_FIRSTHDR(&messages[i].msg_hdr); header != NULL;
             header = CMSG_NXTHDR(&messages[i].msg_hdr, header)) {
            if (header->cmsg_level == SOL_UDP && header->cmsg_type == UDP_GRO) {
                int size;
                memcpy(&size, CMSG_DATA(header), sizeof(size));
                if (size > 0 && (uint32_t)size < datagrams[i].length) datagrams[i].segment_size = (uint16_t)size;
            }
        }
    }
    return received;
}

int shoal_udp_send_batch(int fd, const shoal_datagram *datagrams, int count) {
    if (count > SHOAL_MAX_BATCH) count = SHOAL_MAX_BATCH;
    struct mmsghdr messages[SHOAL_MAX_BATCH];
    struct iovec vectors[SHOAL_MAX_BATCH];
    struct sockaddr_in peers[SHOAL_MAX_BATCH];
    prepare(messages, vectors, peers, datagrams, count);
    for (int i = 0; i < count; i++) {
        memset(&peers[i], 0, sizeof(peers[i]));
        peers[i].sin_family = AF_INET;
        peers[i].sin_addr.s_addr = htonl(datagrams[i].address);
        peers[i].sin_port = htons(datagrams[i].port);
    }
    int sent = 0;
    while (sent < count) {
        int result = sendmmsg(fd, messages + sent, (unsigned)(count - sent), 0);
        if (result < 0) {
            if (errno == EINTR) continue;
            return sent > 0 ? sent : -errno;
        }
        sent += result;
    }
    return sent;
}

int shoal_udp_bind(uint32_t address, uint16_t port, int buffer_bytes, int gro) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (gro) {
        // Best effort: a kernel without UDP_GRO (before 5.0) hands over one datagram per slot.
        int one = 1;
        setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
    }
    if (buffer_bytes > 0) {
        // SO_*BUFFORCE passes rmem_max as root; fall back to the capped option otherwise.
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer_bytes, sizeof(int)) < 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof(int));
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer_bytes, sizeof(int)) < 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof(int));
    }
    struct sockaddr_in local;
    memset(&local, 0, sizeof(local));
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(address);
    local.sin_port = htons(port);
    if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

#include <sys/eventfd.h>

int shoal_eventfd(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int shoal_eventfd_signal(int fd) {
    uint64_t one = 1;
    return write(fd, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

int shoal_eventfd_drain(int fd) {
    uint64_t value;
    return read(fd, &value, sizeof(value)) == sizeof(value) || errno == EAGAIN ? 0 : -errno;
}

int shoal_udp_send_segmented(int fd, const struct iovec *vectors, int count, uint32_t address, uint16_t port,
                             uint16_t segment_size) {
    struct sockaddr_in peer;
    memset(&peer, 0, sizeof(peer));
    peer.sin_family = AF_INET;
    peer.sin_addr.s_addr = htonl(address);
    peer.sin_port = htons(port);
    union { char bytes[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof(control));
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    message.msg_name = &peer;
    message.msg_namelen = sizeof(peer);
    message.msg_iov = (struct iovec *)vectors;
    message.msg_iovlen = (size_t)count;
    message.msg_control = control.bytes;
    message.msg_controllen = sizeof(control.bytes);
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_UDP;
    header->cmsg_type = UDP_SEGMENT;
    header->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(header), &segment_size, sizeof(segment_size));
    ssize_t sent;
    do {
        sent = sendmsg(fd, &message, 0);
    } while (sent < 0 && errno == EINTR);
    return sent < 0 ? -errno : (int)sent;
}
