/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The single drop exit of every program: count by reason, report an event, TC_ACT_SHOT. */
#pragma once

#include "base.h"
#include "maps.h"
#include "metrics.h"

/* True when a handler's result is a drop reason rather than a TC_ACT_* verdict. */
static __always_inline int is_drop(int ret)
{
	return ret < 0;
}

/*
 * Counts the drop in trellis_metrics and sends a trellis_drop_event with what is known of the
 * flow (the parts not parsed yet are zero). A full ring buffer loses the event, never the count.
 */
static __always_inline int send_drop(struct __sk_buff *ctx, int reason, __u8 direction,
				     const struct trellis_ct_key *flow)
{
	struct trellis_drop_event *e;

	metrics_count(direction, TRELLIS_METRIC_DROP, reason, ctx->len);

	e = bpf_ringbuf_reserve(&trellis_events, sizeof(*e), 0);
	if (e) {
		e->timestamp_ns = bpf_ktime_get_ns();
		e->reason = reason;
		e->ifindex = ctx->ifindex;
		e->direction = direction;
		e->family = flow->family;
		e->proto = flow->proto;
		e->pad = 0;
		e->sport = flow->sport;
		e->dport = flow->dport;
		__builtin_memcpy(e->saddr, flow->saddr, 16);
		__builtin_memcpy(e->daddr, flow->daddr, 16);
		e->len = ctx->len;
		e->pad2 = 0;
		bpf_ringbuf_submit(e, 0);
	}
	return TC_ACT_SHOT;
}
