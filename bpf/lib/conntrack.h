/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking in trellis_conntrack: one entry per flow, keyed by its first direction.
 * Looking up never creates: an entry is made only for a flow whose first packet policy allowed
 * (see policy.h), so a denied packet can never make its "reply" look legitimate.
 */
#pragma once

#include "base.h"
#include "maps.h"
#include "flow.h"

enum ct_status {
	CT_NEW = 0,         /* not tracked, or tracked but no reply seen yet */
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

/*
 * The entry of `flow` in either direction (NULL when untracked), its status, and in `orig` the
 * key the entry is stored under: the flow as its first packet went.
 */
static __always_inline struct trellis_ct_entry *ct_lookup(const struct trellis_ct_key *flow, int *status,
							   struct trellis_ct_key *orig)
{
	struct trellis_ct_entry *e;

	e = bpf_map_lookup_elem(&trellis_conntrack, flow);
	if (e) {
		*orig = *flow;
		*status = (e->flags & TRELLIS_CT_F_SEEN_REPLY) ? CT_ESTABLISHED : CT_NEW;
		return e;
	}
	ct_reverse(orig, flow);
	e = bpf_map_lookup_elem(&trellis_conntrack, orig);
	if (e) {
		*status = CT_REPLY;
		return e;
	}
	*orig = *flow;
	*status = CT_NEW;
	return NULL;
}

/* Accounts one packet of a tracked flow; `status` says which way it went. */
static __always_inline void ct_account(struct trellis_ct_entry *e, int status, __u8 tcp_flags, __u32 len)
{
	__u32 closing = (tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) ? TRELLIS_CT_F_CLOSING : 0;

	e->last_seen_ns = bpf_ktime_get_ns();
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, len);
	if (status == CT_REPLY) {
		e->tcp_flags_reply |= tcp_flags; /* racy union of flags: a lost bit is harmless */
		if (!(e->flags & TRELLIS_CT_F_SEEN_REPLY) || closing)
			__sync_fetch_and_or(&e->flags, TRELLIS_CT_F_SEEN_REPLY | closing);
	} else {
		e->tcp_flags_orig |= tcp_flags;
		if (closing)
			__sync_fetch_and_or(&e->flags, closing);
	}
}

/*
 * Starts tracking a flow whose first packet policy allowed under generation `gen`; `flags`:
 * how it travels (TRELLIS_CT_F_VIA_STACK, TRELLIS_CT_F_SERVICE).
 */
static __always_inline void ct_create(const struct trellis_ct_key *flow, __u8 tcp_flags, __u32 len, __u32 gen,
				      __u32 flags)
{
	__u64 now = bpf_ktime_get_ns();
	struct trellis_ct_entry n = {
		.created_ns = now,
		.last_seen_ns = now,
		.packets = 1,
		.bytes = len,
		.flags = flags | ((tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) ? TRELLIS_CT_F_CLOSING : 0),
		.policy_gen = gen,
		.tcp_flags_orig = tcp_flags,
	};

	/* Another CPU may have created it meanwhile: its entry is as good. */
	bpf_map_update_elem(&trellis_conntrack, flow, &n, BPF_NOEXIST);
}

/* Forgets a flow (stored under `orig`) that policy no longer allows. */
static __always_inline void ct_forget(const struct trellis_ct_key *orig)
{
	bpf_map_delete_elem(&trellis_conntrack, orig);
}
