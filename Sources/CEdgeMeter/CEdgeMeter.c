#define _GNU_SOURCE
#include "CEdgeMeter.h"
#include <string.h>
#include <errno.h>
#include <time.h>
#include <netinet/ip.h>
#include <linux/errqueue.h>

int em_enable_rx_metadata(int fd, int family) {
    int on = 1;
    int stamped = setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) == 0;
    if (family == AF_INET6) {
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof(on));
    } else {
        (void)setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &on, sizeof(on));
    }
    return stamped;
}

ssize_t em_recvmsg(int fd, void *buf, size_t len, struct sockaddr_storage *from, socklen_t *fromlen,
                   em_rxinfo *info, int flags) {
    char control[512];
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_name = from;
    msg.msg_namelen = fromlen ? *fromlen : 0;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    info->has_kernel_timestamp = 0;
    info->kernel_ts_sec = 0;
    info->kernel_ts_nsec = 0;
    info->ttl = -1;
    ssize_t n = recvmsg(fd, &msg, flags);
    if (n < 0) return n;
    if (fromlen) *fromlen = msg.msg_namelen;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            info->has_kernel_timestamp = 1;
            info->kernel_ts_sec = ts.tv_sec;
            info->kernel_ts_nsec = ts.tv_nsec;
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) {
            int ttl;
            memcpy(&ttl, CMSG_DATA(c), sizeof(ttl));
            info->ttl = ttl;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) {
            int hl;
            memcpy(&hl, CMSG_DATA(c), sizeof(hl));
            info->ttl = hl;
        }
    }
    return n;
}

int64_t em_clock_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t em_clock_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}


#include <linux/icmp.h>
#include <netinet/icmp6.h>

int em_set_icmp_filter(int fd, int family) {
    if (family == AF_INET6) {
        struct icmp6_filter f;
        ICMP6_FILTER_SETBLOCKALL(&f);
        ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
        ICMP6_FILTER_SETPASS(ICMP6_DST_UNREACH, &f);
        ICMP6_FILTER_SETPASS(ICMP6_TIME_EXCEEDED, &f);
        return setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof(f));
    }
    struct icmp_filter f;
    f.data = ~((1U << ICMP_ECHOREPLY) | (1U << ICMP_DEST_UNREACH) | (1U << ICMP_TIME_EXCEEDED));
    return setsockopt(fd, SOL_RAW, ICMP_FILTER, &f, sizeof(f));
}

int em_poll_ns(struct pollfd *fds, unsigned long nfds, int64_t timeout_ns) {
    if (timeout_ns < 0) return ppoll(fds, nfds, NULL, NULL);
    struct timespec ts = { .tv_sec = timeout_ns / 1000000000LL, .tv_nsec = timeout_ns % 1000000000LL };
    return ppoll(fds, nfds, &ts, NULL);
}
