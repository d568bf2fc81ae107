// The datapath's shared layouts (bpf/lib/common.h), for Swift: the same header the BPF programs
// compile against, so map keys and values have a single definition.
#pragma once

#include "../../../bpf/lib/common.h"

// BPF_PROG_TEST_RUN flag (Linux 6.11) missing from Debian's 6.1 UAPI headers: run the program on
// a CHECKSUM_COMPLETE skb (skb->csum over the L3 packet) and fail with EBADMSG when the program
// leaves skb->csum inconsistent with the bytes.
#define TRELLIS_TEST_RUN_SKB_CHECKSUM_COMPLETE (1U << 2)

// The filesystem type (statfs f_type) of `path`, or -errno: Swift's Glibc module lacks statfs.
// Used to check that the pin directory is on a bpffs (BPF_FS_MAGIC).
#include <errno.h>
#include <sys/vfs.h>
static inline long trellis_fs_type(const char *path) {
    struct statfs fs;
    return statfs(path, &fs) == 0 ? (long)fs.f_type : -errno;
}
