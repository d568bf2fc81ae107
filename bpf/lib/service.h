/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A pod's connection to a Service address. kube-proxy (or whatever translates Services on the
 * node) picks the backend in the node's stack, after this datapath has seen the packet, so its
 * egress policy cannot be decided here: NetworkPolicy applies to the backend, not to the
 * ClusterIP. The packet goes to the stack marked with the pod's policy id, and the egress check
 * happens where the translated packet leaves the stack:
 *
 *   to_pod       a backend on this node (its ingress is checked there too);
 *   to_overlay   a pod on another node (its ingress is checked on arrival there);
 *   to_underlay  anything else (a node's API server, an external endpoint), by the mark.
 *
 * The flow is tracked here (TRELLIS_CT_F_SERVICE) only so that its replies, which the stack
 * de-NATs to come from the Service address, pass the pod's ingress gate.
 */
#pragma once

#include "base.h"
#include "maps.h"
#include "metrics.h"
#include "conntrack.h"

/* Whether a packet of `src` to a Service address can be marked (its policy id fits the mark). */
static __always_inline int service_markable(const struct trellis_endpoint *src)
{
	return src && src->policy_id <= TRELLIS_MARK_ID_MAX;
}

/* Hands a pod's packet to a Service address to the stack, tracked and marked. */
static __always_inline int to_service(struct __sk_buff *ctx, const struct trellis_config *cfg,
				      const struct trellis_ct_key *flow, __u8 tcp_flags, int later_fragment,
				      const struct trellis_endpoint *src, __u8 direction)
{
	struct trellis_ct_key orig;
	struct trellis_ct_entry *e;
	int status;

	if (!later_fragment) {
		e = ct_lookup(flow, &status, &orig);
		if (e) {
			ct_account(e, status, tcp_flags, ctx->len);
			/* Tracked before the address became a Service: from now on it is one. */
			if (!(e->flags & TRELLIS_CT_F_SERVICE))
				__sync_fetch_and_or(&e->flags, TRELLIS_CT_F_SERVICE);
		} else {
			ct_create(flow, tcp_flags, ctx->len, cfg->policy_gen, TRELLIS_CT_F_SERVICE);
		}
	}
	ctx->mark = (ctx->mark & ~(TRELLIS_MARK_TAG_MASK | TRELLIS_MARK_ID_MASK)) |
		    trellis_mark_service(src->policy_id);
	count_forward(ctx, direction, TRELLIS_FWD_SERVICE);
	return TC_ACT_OK;
}

/* Takes the Service mark off a packet whose egress check is done. */
static __always_inline void service_mark_clear(struct __sk_buff *ctx)
{
	if ((ctx->mark & TRELLIS_MARK_TAG_MASK) == TRELLIS_MARK_SERVICE)
		ctx->mark &= ~(TRELLIS_MARK_TAG_MASK | TRELLIS_MARK_ID_MASK);
}
