#ifndef CEDGEMETER_H
#define CEDGEMETER_H
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <netinet/tcp.h>

/// What `em_recvmsg` found in the control data of one received datagram.
typedef struct em_rxinfo {
    int has_kernel_timestamp;   ///< 1 when SO_TIMESTAMPNS delivered a stamp
    int64_t kernel_ts_sec;      ///< CLOCK_REALTIME seconds of the kernel receive stamp
    int64_t kernel_ts_nsec;     ///< nanoseconds part
    int ttl;                    ///< IP TTL / IPv6 hop limit, -1 when not delivered
} em_rxinfo;

/// Enables SO_TIMESTAMPNS and TTL/hop-limit delivery. Returns 1 when kernel stamps were enabled.
int em_enable_rx_metadata(int fd, int family);

/// recvmsg() with control-message parsing. Returns the byte count or -1 (errno set).
ssize_t em_recvmsg(int fd, void *buf, size_t len, struct sockaddr_storage *from, socklen_t *fromlen,
                   em_rxinfo *info, int flags);

/// clock_gettime wrappers, nanoseconds.
int64_t em_clock_realtime_ns(void);
int64_t em_clock_monotonic_ns(void);

#endif

/// On raw ICMP sockets, asks the kernel to deliver only echo replies and errors quoting our
/// requests (echo reply, destination unreachable, time exceeded), as iputils does: without it
/// every ICMP packet on the host, our own outgoing requests included, is copied to the socket.
int em_set_icmp_filter(int fd, int family);

/// poll() with a nanosecond timeout (ppoll); a negative timeout waits forever.
int em_poll_ns(struct pollfd *fds, unsigned long nfds, int64_t timeout_ns);
