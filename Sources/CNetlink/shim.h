// The libnl-3 / libnl-route-3 headers Trellis uses. Include paths come from pkg-config
// (libnl-3.0, libnl-route-3.0); the libraries are named in the module map so that a release
// build can link them statically (see hack/build-release.sh).
#pragma once
#include <netlink/netlink.h>
#include <netlink/errno.h>
#include <netlink/socket.h>
#include <netlink/cache.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/neighbour.h>
#include <linux/if.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/if_addr.h>

// Namespace syscalls. Swift's Glibc module is built without _GNU_SOURCE, so setns, unshare and
// gettid are not visible from Swift; these wrappers go through syscall(2) with the same effect.
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/sched.h>

static inline int trellis_setns(int fd, int nstype) { return (int)syscall(SYS_setns, fd, nstype); }
static inline int trellis_unshare(int flags) { return (int)syscall(SYS_unshare, flags); }
static inline int trellis_gettid(void) { return (int)syscall(SYS_gettid); }
static const int TRELLIS_CLONE_NEWNET = CLONE_NEWNET;

// One malloc arena for the whole process (see NetworkNamespace.useSingleMallocArena).
#include <malloc.h>
static inline void trellis_single_malloc_arena(void) { mallopt(M_ARENA_MAX, 1); }

// ethtool's GRO switch (SIOCETHTOOL, ETHTOOL_SGRO): not a netlink operation in libnl-3.
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
static inline int trellis_set_gro(const char *ifname, int on) {
    struct ethtool_value value = { .cmd = ETHTOOL_SGRO, .data = on ? 1 : 0 };
    /* struct ifreq's layout (name, then the union whose first member we use), spelled out:
     * Swift's Glibc module and <linux/if.h> each define struct ifreq, and the two clash. */
    struct { char name[IFNAMSIZ]; void *data; char pad[24 - sizeof(void *)]; } req;
    int fd, rc;
    memset(&req, 0, sizeof(req));
    strncpy(req.name, ifname, IFNAMSIZ - 1);
    req.data = &value;
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    rc = ioctl(fd, SIOCETHTOOL, &req) < 0 ? -errno : 0;
    close(fd);
    return rc;
}
