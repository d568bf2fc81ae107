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
