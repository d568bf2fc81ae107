// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * to_overlay: tc egress of the node's overlay device (the agent's `trellis_ovl`). The node's
 * stack routes every remote pod CIDR into that device, so this sees what the stack itself sends
 * to pods on other nodes: its own traffic (host-network clients, the API server calling a
 * webhook) and what it forwards after a translation (kube-proxy's DNAT of a pod's Service
 * connection to a backend on another node, a NodePort). Pods' direct traffic never comes here:
 * from_pod encapsulates it.
 *
 *   1. NetworkPolicy (policy.h): the egress of a pod of this node that sent the packet (a
 *      Service connection, checked against the backend chosen); the flow is tracked as routed
 *      by the stack, so its replies come back through the stack (from_underlay);
 *   2. Geneve to the node that hosts the destination.
 */
#include "lib/base.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/drop.h"
#include "lib/lookup.h"
#include "lib/flow.h"
#include "lib/conntrack.h"
#include "lib/policy.h"
#include "lib/geneve.h"
#include "lib/service.h"

#define DIR TRELLIS_DIR_TO_OVERLAY

/* Returns a TC_ACT_* verdict, or a (negative) drop reason for the exit to report. */
static __always_inline int handle_to_overlay(struct __sk_buff *ctx, struct trellis_ct_key *flow)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const struct trellis_config *cfg = config_get();
	const struct trellis_tunnel *tun;
	struct ethhdr *eth = data;
	int later_fragment = 0, err;
	__u8 tcp_flags = 0, tos;
	__u32 l4_off, ct_flags, mtu = 0;
	__be16 proto;

	if (!cfg || !cfg->node_ipv4 || !cfg->underlay_ifindex)
		return TRELLIS_DROP_NO_CONFIG;
	if ((void *)(eth + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__be32 daddr;

		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
			return TRELLIS_DROP_INVALID_PACKET;
		flow_set_v4(flow, ip);
		daddr = ip->daddr;
		tos = ip->tos;
		later_fragment = (ip->frag_off & bpf_htons(IPV4_FRAG_OFFSET)) != 0;
		l4_off = ETH_HLEN + ip->ihl * 4;
		tun = tunnel_v4(daddr);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct in6_addr daddr;
		int l4;

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return TRELLIS_DROP_INVALID_PACKET;
		flow_set_v6(flow, ip6);
		daddr = ip6->daddr;
		tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		l4 = ipv6_skip_exthdr(ctx, ETH_HLEN + sizeof(*ip6), flow, &later_fragment);
		if (l4 < 0)
			return l4;
		l4_off = l4;
		tun = tunnel_v6(&daddr);
	} else {
		/* Nothing but IP is routed here (the device does no ARP). */
		return TRELLIS_DROP_UNSUPPORTED_L3;
	}
	/* A stale route (its node gone) or our own CIDR: nobody to send it to. */
	if (!tun || tun->node_ipv4 == cfg->node_ipv4)
		return TRELLIS_DROP_NO_TUNNEL;

	if (!later_fragment) {
		err = flow_load_ports(ctx, l4_off, flow, &tcp_flags);
		if (err)
			return err;
	}
	err = policy_gate(ctx, cfg, flow, tcp_flags, ctx->len, l4_off, later_fragment, TRELLIS_CT_F_VIA_STACK,
			  &ct_flags);
	if (err)
		return err;
	/* Checked: the underlay device must not check the encapsulated packet again. */
	service_mark_clear(ctx);

	/*
	 * The device's MTU is the pod MTU, so the stack already fragmented or answered "too big"
	 * for anything larger (GSO packets are checked per segment); this only guards a device
	 * whose MTU someone raised.
	 */
	if (bpf_check_mtu(ctx, cfg->underlay_ifindex, &mtu, TRELLIS_GENEVE_OVERHEAD, 0) != BPF_MTU_CHK_RET_SUCCESS)
		return TRELLIS_DROP_FRAG_NEEDED;
	return geneve_encap(ctx, cfg, tun->node_ipv4, tos, DIR);
}

SEC("tc")
int to_overlay(struct __sk_buff *ctx)
{
	struct trellis_ct_key flow = {};
	int ret = handle_to_overlay(ctx, &flow);

	if (is_drop(ret))
		return send_drop(ctx, ret, DIR, &flow);
	return ret;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
