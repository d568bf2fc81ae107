// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * to_pod: tc egress of a pod's host-side veth (both modes), i.e. what the kernel delivers to the
 * pod: in bridge mode everything from pods of this node (switched by the bridge); in both modes
 * what the node's own stack sends or forwards (the node itself, the world). Runs the stateful
 * policy gate (policy.h) for the pod's ingress, and for the egress of a local pod whose packet the
 * stack forwarded here (a Service connection kube-proxy translated to this pod). A flow that
 * starts here was routed by the stack: it is tracked as such, so that the pod's replies go back
 * through the stack and its NAT is undone. Packets the datapath redirects straight into a pod
 * (bpf_redirect_peer) do not pass here: from_pod and from_underlay checked them.
 */
#include "lib/base.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/drop.h"
#include "lib/lookup.h"
#include "lib/flow.h"
#include "lib/conntrack.h"
#include "lib/policy.h"

#define DIR TRELLIS_DIR_TO_POD

/* IPv6 neighbour discovery and router messages: link-local control, never policed. */
static __always_inline int is_ndisc(struct __sk_buff *ctx, const struct trellis_ct_key *flow, __u32 l4_off)
{
	__u8 type;

	if (flow->proto != IPPROTO_ICMPV6 || bpf_skb_load_bytes(ctx, l4_off, &type, 1) < 0)
		return 0;
	return type >= 133 && type <= 137;
}

/* Returns a TC_ACT_* verdict, or a (negative) drop reason for the exit to report. */
static __always_inline int handle_to_pod(struct __sk_buff *ctx, struct trellis_ct_key *flow)
{
	const struct trellis_config *cfg = config_get();
	const struct trellis_endpoint *dst;
	struct l3_info l3 = {};
	__u8 tcp_flags = 0;
	__u32 ct_flags;
	int err;

	if (!cfg)
		return TRELLIS_DROP_NO_CONFIG;
	err = flow_parse_l3(ctx, flow, &l3);
	if (err == FLOW_NOT_IP) {
		/* ARP and anything else that is not IP: no policy applies. */
		count_forward(ctx, DIR, TRELLIS_FWD_TO_POD);
		return TC_ACT_OK;
	}
	if (err)
		return err;

	/* Broadcast, multicast, or a frame the bridge flooded towards the wrong port: not a
	 * connection to this pod, nothing to police (the pod's stack drops what is not its own). */
	dst = endpoint_of(flow->family, flow->daddr);
	if (!dst || dst->host_ifindex != ctx->ifindex) {
		count_forward(ctx, DIR, TRELLIS_FWD_TO_POD);
		return TC_ACT_OK;
	}
	if (!l3.later_fragment) {
		err = flow_load_ports(ctx, l3.l4_off, flow, &tcp_flags);
		if (err)
			return err;
		if (is_ndisc(ctx, flow, l3.l4_off)) {
			count_forward(ctx, DIR, TRELLIS_FWD_TO_POD);
			return TC_ACT_OK;
		}
	}
	err = policy_gate(ctx, cfg, flow, tcp_flags, ctx->len, l3.l4_off, l3.later_fragment, TRELLIS_CT_F_VIA_STACK,
			  &ct_flags);
	if (err)
		return err;
	count_forward(ctx, DIR, TRELLIS_FWD_TO_POD);
	return TC_ACT_OK;
}

SEC("tc")
int to_pod(struct __sk_buff *ctx)
{
	struct trellis_ct_key flow = {};
	int ret = handle_to_pod(ctx, &flow);

	if (is_drop(ret))
		return send_drop(ctx, ret, DIR, &flow);
	return ret;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
