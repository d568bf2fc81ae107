// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * to_pod: tc egress of a pod's host-side veth in bridge mode, i.e. what the bridge (or the
 * kernel) delivers to the pod. Counts it and tracks connections; ingress network policy will
 * hook in at the POLICY mark. (In ebpf mode traffic to pods is redirected straight into them
 * and the kernel's own deliveries pass the host veth without a program.)
 */
#include "lib/base.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/drop.h"
#include "lib/flow.h"
#include "lib/conntrack.h"

#define DIR TRELLIS_DIR_TO_POD

/* Fills `flow` and updates conntrack; packets it cannot parse are delivered untracked. */
static __always_inline void track(struct __sk_buff *ctx, struct trellis_ct_key *flow)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	int later_fragment = 0, l4;
	__u8 tcp_flags = 0;

	if ((void *)(eth + 1) > data_end)
		return;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
			return;
		flow_set_v4(flow, ip);
		later_fragment = (ip->frag_off & bpf_htons(IPV4_FRAG_OFFSET)) != 0;
		l4 = ETH_HLEN + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return;
		flow_set_v6(flow, ip6);
		l4 = ipv6_skip_exthdr(ctx, ETH_HLEN + sizeof(*ip6), flow, &later_fragment);
		if (l4 < 0)
			return;
	} else {
		return;
	}
	if (!later_fragment && flow_load_ports(ctx, l4, flow, &tcp_flags) < 0)
		return;
	ct_update(flow, tcp_flags, ctx->len);
}

/* Returns a TC_ACT_* verdict, or a (negative) drop reason for the exit to report. */
static __always_inline int handle_to_pod(struct __sk_buff *ctx, struct trellis_ct_key *flow)
{
	track(ctx, flow);

	/* POLICY: ingress policy of the destination endpoint goes here (flow, ct status). */

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
