// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * to_underlay: tc egress of the node's underlay device. A pod's Service connection whose
 * backend is no pod (the API server on a node, an endpoint outside the cluster) leaves the node
 * here, after kube-proxy's DNAT and maybe a masquerade: the pod's egress policy is checked
 * against the translated destination, the pod known from the packet's mark (service.h).
 * Stateless, per packet: a policy change applies to the next one. Every other packet (Geneve
 * from this node included) passes untouched, after one look at its mark.
 */
#include "lib/base.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/drop.h"
#include "lib/flow.h"
#include "lib/policy.h"

#define DIR TRELLIS_DIR_TO_UNDERLAY

/* Returns a TC_ACT_* verdict, or a (negative) drop reason for the exit to report. */
static __always_inline int handle_to_underlay(struct __sk_buff *ctx, struct trellis_ct_key *flow)
{
	struct l3_info l3 = {};
	__u8 tcp_flags = 0;
	__u32 policy_id;
	int err;

	if ((ctx->mark & TRELLIS_MARK_TAG_MASK) != TRELLIS_MARK_SERVICE)
		return TC_ACT_OK;
	policy_id = trellis_mark_policy_id(ctx->mark);
	err = flow_parse_l3(ctx, flow, &l3);
	if (err == FLOW_NOT_IP)
		return TC_ACT_OK;
	if (err)
		return err;
	/* Non-first fragments carry no ports; the first one was checked (see policy_gate). */
	if (l3.later_fragment)
		return TC_ACT_OK;
	err = flow_load_ports(ctx, l3.l4_off, flow, &tcp_flags);
	if (err)
		return err;
	if (!policy_allows(policy_id, TRELLIS_POLICY_EGRESS, flow->family, flow->daddr, flow->proto, flow->dport))
		return TRELLIS_DROP_POLICY_EGRESS;
	count_forward(ctx, DIR, TRELLIS_FWD_SERVICE);
	return TC_ACT_OK;
}

SEC("tc")
int to_underlay(struct __sk_buff *ctx)
{
	struct trellis_ct_key flow = {};
	int ret = handle_to_underlay(ctx, &flow);

	if (is_drop(ret))
		return send_drop(ctx, ret, DIR, &flow);
	return ret;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
