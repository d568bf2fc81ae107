// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * from_underlay: tc ingress of the node's underlay device. Geneve (IPv4, UDP 6081, to the node
 * IP) from a known peer with our VNI is decapsulated here, before the stack would answer "port
 * unreachable", checked against the destination pod's ingress policy (stateful, policy.h) and
 * delivered straight into it. Replies of flows this node's stack routed into the overlay
 * (to_overlay) go back to the stack instead, through the overlay device, whether they are for a
 * pod (kube-proxy's DNAT to undo) or for the node itself. Everything else is left untouched for
 * the kernel.
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

#define DIR TRELLIS_DIR_FROM_UNDERLAY

/*
 * A decapsulated packet for an address that is no pod of this node: only the reply of a flow
 * the node's stack sent into the overlay (or an ICMP error about one) is let in, to the stack.
 */
static __always_inline int to_node(struct __sk_buff *ctx, const struct trellis_config *cfg,
				   const struct trellis_ct_key *flow, const struct geneve_info *info, __u8 tcp_flags)
{
	struct trellis_ct_key orig;
	struct trellis_ct_entry *e;
	__u32 ct_flags = 0;
	int status;

	if (info->later_fragment)
		return TRELLIS_DROP_UNKNOWN_ENDPOINT;
	e = ct_lookup(flow, &status, &orig);
	if (e && status == CT_REPLY && (e->flags & TRELLIS_CT_F_VIA_STACK)) {
		ct_account(e, status, tcp_flags, ctx->len - info->inner_off - ETH_HLEN);
		return geneve_decap_to_stack(ctx, cfg, info, DIR);
	}
	if (!e && (flow->proto == IPPROTO_ICMP || flow->proto == IPPROTO_ICMPV6) &&
	    icmp_error_related(ctx, info->l4_off, flow, &ct_flags) && (ct_flags & TRELLIS_CT_F_VIA_STACK))
		return geneve_decap_to_stack(ctx, cfg, info, DIR);
	return TRELLIS_DROP_UNKNOWN_ENDPOINT;
}

/* Not Geneve for this node: leave it to the kernel. */
static __always_inline int pass(struct __sk_buff *ctx)
{
	count_forward(ctx, DIR, TRELLIS_FWD_NOT_GENEVE);
	return TC_ACT_OK;
}

/* Returns a TC_ACT_* verdict, or a (negative) drop reason for the exit to report. */
static __always_inline int handle_from_underlay(struct __sk_buff *ctx, struct trellis_ct_key *flow)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const struct trellis_config *cfg = config_get();
	struct ethhdr *eth = data;
	const struct trellis_endpoint *ep;
	struct geneve_info info = {};
	struct iphdr *ip;
	struct udphdr *udp;
	__u8 tcp_flags = 0;
	__u32 ct_flags;
	int err;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return pass(ctx);
	ip = (void *)(eth + 1);
	/* Our peers send no IPv4 options and never fragment (DF): anything else is not ours. */
	if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(IPV4_MF | IPV4_FRAG_OFFSET)))
		return pass(ctx);
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end || udp->dest != bpf_htons(TRELLIS_GENEVE_PORT))
		return pass(ctx);
	if (!cfg || !cfg->node_ipv4)
		return TRELLIS_DROP_NO_CONFIG;
	if (ip->daddr != cfg->node_ipv4)
		return pass(ctx);

	/* Until the inner headers are read, drop events describe the outer packet. */
	flow_set_v4(flow, ip);
	flow->sport = udp->source;
	flow->dport = udp->dest;
	if (!peer_known(ip->saddr))
		return TRELLIS_DROP_UNKNOWN_PEER;

	err = geneve_parse(ctx, cfg, ETH_HLEN + sizeof(struct iphdr) + sizeof(struct udphdr),
			   flow, &info);
	if (err)
		return err;
	flow->sport = 0;
	flow->dport = 0;
	if (info.proto == bpf_htons(ETH_P_IP))
		ep = endpoint_v4(info.daddr.in6_u.u6_addr32[0]);
	else
		ep = endpoint_v6(&info.daddr);

	if (!info.later_fragment) {
		err = flow_load_ports(ctx, info.l4_off, flow, &tcp_flags);
		if (err)
			return err;
	}
	if (!ep)
		return to_node(ctx, cfg, flow, &info, tcp_flags);
	err = policy_gate(ctx, cfg, flow, tcp_flags, ctx->len - info.inner_off - ETH_HLEN, info.l4_off,
			  info.later_fragment, 0, &ct_flags);
	if (err)
		return err;
	if (ct_flags & TRELLIS_CT_F_VIA_STACK)
		return geneve_decap_to_stack(ctx, cfg, &info, DIR);
	return geneve_decap(ctx, &info, ep, DIR);
}

SEC("tc")
int from_underlay(struct __sk_buff *ctx)
{
	struct trellis_ct_key flow = {};
	int ret = handle_from_underlay(ctx, &flow);

	if (is_drop(ret))
		return send_drop(ctx, ret, DIR, &flow);
	return ret;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
