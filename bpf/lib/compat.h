/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kernel UAPI the datapath needs that Debian 12's linux-libc-dev (6.1 headers) lacks.
 *
 * BPF_F_ADJ_ROOM_DECAP_L3_IPV4/IPV6 arrived in Linux 6.3 (values from include/uapi/linux/bpf.h
 * of 6.18). They make bpf_skb_adjust_room() accept a shrink that leaves an L3 header of the
 * other family (our outer IPv4 around an inner IPv6) and set skb->protocol to the inner one.
 * Prefixed names, so a newer header that defines the real enumerators cannot clash.
 * This is the only place they are defined.
 */
#pragma once

#define TRELLIS_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define TRELLIS_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
