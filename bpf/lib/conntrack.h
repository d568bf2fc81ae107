/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking in trellis_conntrack: one entry per flow, keyed by its first direction. */
#pragma once

#include "base.h"
#include "maps.h"
#include "flow.h"

enum ct_status {
	CT_NEW = 0,         /* first packet(s) of a flow, no reply yet */
	CT_ESTABLISHED = 1, /* original direction of a flow that has seen a reply */
	CT_REPLY = 2,       /* reply direction */
};

/* The key of the opposite direction of `k`. */
static __always_inline void ct_reverse(struct trellis_ct_key *r, const struct trellis_ct_key *k)
{
	__builtin_memcpy(r->saddr, k->daddr, 16);
	__builtin_memcpy(r->daddr, k->saddr, 16);
	r->sport = k->dport;
	r->dport = k->sport;
	r->proto = k->proto;
	r->family = k->family;
	r->pad[0] = 0;
	r->pad[1] = 0;
}

/* Accounts a packet of `flow` in its entry (created when new) and says which direction it is. */
static __always_inline int ct_update(const struct trellis_ct_key *flow, __u8 tcp_flags, __u32 len)
{
	__u64 now = bpf_ktime_get_ns();
	struct trellis_ct_entry *e;
	struct trellis_ct_key rev;
	__u32 closing = (tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) ? TRELLIS_CT_F_CLOSING : 0;

	e = bpf_map_lookup_elem(&trellis_conntrack, flow);
	if (e) {
		e->last_seen_ns = now;
		__sync_fetch_and_add(&e->packets, 1);
		__sync_fetch_and_add(&e->bytes, len);
		e->tcp_flags_orig |= tcp_flags; /* racy union of flags: a lost bit is harmless */
		if (closing)
			__sync_fetch_and_or(&e->flags, closing);
		return (e->flags & TRELLIS_CT_F_SEEN_REPLY) ? CT_ESTABLISHED : CT_NEW;
	}

	ct_reverse(&rev, flow);
	e = bpf_map_lookup_elem(&trellis_conntrack, &rev);
	if (e) {
		e->last_seen_ns = now;
		__sync_fetch_and_add(&e->packets, 1);
		__sync_fetch_and_add(&e->bytes, len);
		e->tcp_flags_reply |= tcp_flags;
		if (!(e->flags & TRELLIS_CT_F_SEEN_REPLY) || closing)
			__sync_fetch_and_or(&e->flags, TRELLIS_CT_F_SEEN_REPLY | closing);
		return CT_REPLY;
	}

	struct trellis_ct_entry n = {
		.created_ns = now,
		.last_seen_ns = now,
		.packets = 1,
		.bytes = len,
		.flags = closing,
		.tcp_flags_orig = tcp_flags,
	};
	bpf_map_update_elem(&trellis_conntrack, flow, &n, BPF_NOEXIST);
	return CT_NEW;
}
