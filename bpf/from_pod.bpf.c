// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * from_pod: tc ingress of a pod's host-side veth (both modes), i.e. every frame a pod sends.
 *
 *   1. port security: source IP/MAC/interface must be the pod's (ARP and ND included);
 *   2. a Service address (trellis_services) -> to the stack, which translates it; policy is
 *      checked after the translation (service.h);
 *   3. NetworkPolicy, stateful (policy.h): egress of the sending pod and, when the destination
 *      is a pod of this node, its ingress; established flows pass on their conntrack entry;
 *   4. forwarding: the reply of a flow the node's stack routed (kube-proxy's DNAT, the node's
 *      own traffic) -> back to the stack, which undoes its NAT. A pod on this node -> bridge
 *      mode: TC_ACT_OK, the bridge switches; ebpf mode: routed in BPF, bpf_redirect_peer into
 *      the pod. A remote pod CIDR -> Geneve to its node (or an ICMP "too big" answer). Anything
 *      else -> the kernel routes it.
 */
#include "lib/base.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/drop.h"
#include "lib/lookup.h"
#include "lib/flow.h"
#include "lib/conntrack.h"
#include "lib/policy.h"
#include "lib/antispoof.h"
#include "lib/forward.h"
#include "lib/geneve.h"
#include "lib/service.h"
#include "lib/icmp.h"

#define DIR TRELLIS_DIR_FROM_POD

/* A reply of a flow the stack routed: it goes back through the stack. */
static __always_inline int to_stack(struct __sk_buff *ctx)
{
	count_forward(ctx, DIR, TRELLIS_FWD_STACK);
	return TC_ACT_OK;
}

/* Encapsulates to the node that hosts the destination, when it fits the tunnel. */
static __always_inline int to_tunnel(struct __sk_buff *ctx, const struct trellis_config *cfg,
				     const struct trellis_tunnel *tun, __be16 proto, __u8 tos)
{
	int ret;

	if (!cfg->node_ipv4 || !cfg->underlay_ifindex)
		return TRELLIS_DROP_NO_CONFIG;
	if (tun->node_ipv4 == cfg->node_ipv4) {
		/* Our own CIDR (not an endpoint): the kernel knows better. */
		count_forward(ctx, DIR, TRELLIS_FWD_STACK);
		return TC_ACT_OK;
	}
	ret = tunnel_mtu_check(ctx, cfg, proto, DIR);
	if (ret)
		return ret;
	return geneve_encap(ctx, cfg, tun->node_ipv4, tos, DIR);
}

static __always_inline int from_pod_ipv4(struct __sk_buff *ctx, const struct trellis_config *cfg,
					 struct trellis_ct_key *flow)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	const struct trellis_endpoint *src, *dst;
	const struct trellis_tunnel *tun;
	__u8 tcp_flags = 0, tos;
	int later_fragment, err;
	__u32 l4_off, ct_flags;
	__be32 daddr;

	if ((void *)(ip + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	if (ip->version != 4 || ip->ihl < 5)
		return TRELLIS_DROP_INVALID_PACKET;
	flow_set_v4(flow, ip);
	daddr = ip->daddr;
	tos = ip->tos;
	l4_off = ETH_HLEN + ip->ihl * 4;
	later_fragment = (ip->frag_off & bpf_htons(IPV4_FRAG_OFFSET)) != 0;

	/* Ports first, so that a drop event describes the whole flow. */
	if (!later_fragment) {
		err = flow_load_ports(ctx, l4_off, flow, &tcp_flags);
		if (err)
			return err;
	}
	/* flow_load_ports only reads: the packet pointers are still valid. */
	src = endpoint_v4(ip->saddr);
	err = source_is_endpoint(ctx, eth->h_source, src);
	if (err)
		return err;
	if (service_markable(src) && is_service(flow->family, flow->daddr))
		return to_service(ctx, cfg, flow, tcp_flags, later_fragment, src, DIR);
	err = policy_gate(ctx, cfg, flow, tcp_flags, ctx->len, l4_off, later_fragment, 0, &ct_flags);
	if (err)
		return err;
	if (ct_flags & TRELLIS_CT_F_VIA_STACK)
		return to_stack(ctx);

	dst = endpoint_v4(daddr);
	if (dst) {
		if (cfg->flags & TRELLIS_CONFIG_F_BRIDGE_MODE) {
			count_forward(ctx, DIR, TRELLIS_FWD_LOCAL_BRIDGE);
			return TC_ACT_OK;
		}
		return forward_local_v4(ctx, dst, DIR);
	}
	tun = tunnel_v4(daddr);
	if (tun)
		return to_tunnel(ctx, cfg, tun, bpf_htons(ETH_P_IP), tos);
	count_forward(ctx, DIR, TRELLIS_FWD_STACK);
	return TC_ACT_OK;
}

static __always_inline int from_pod_ipv6(struct __sk_buff *ctx, const struct trellis_config *cfg,
					 struct trellis_ct_key *flow)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	const struct trellis_endpoint *src, *dst;
	const struct trellis_tunnel *tun;
	struct in6_addr daddr;
	int nd = 0, later_fragment = 0, l4, err;
	__u8 tcp_flags = 0, tclass;
	__u32 ct_flags;

	if ((void *)(ip6 + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	if (ip6->version != 6)
		return TRELLIS_DROP_INVALID_PACKET;
	flow_set_v6(flow, ip6);
	daddr = ip6->daddr;
	tclass = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);

	/* Ports first, so that a drop event describes the whole flow. */
	l4 = ipv6_skip_exthdr(ctx, ETH_HLEN + sizeof(struct ipv6hdr), flow, &later_fragment);
	if (l4 < 0)
		return l4;
	if (!later_fragment) {
		err = flow_load_ports(ctx, l4, flow, &tcp_flags);
		if (err)
			return err;
	}

	err = ipv6_source_check(ctx, &nd);
	if (err)
		return err;
	if (nd) {
		count_forward(ctx, DIR, TRELLIS_FWD_STACK);
		return TC_ACT_OK;
	}
	/* ipv6_source_check found the source to be an endpoint of this interface; it is looked up
	 * again only for Service traffic, which needs its policy id. */
	if (is_service(flow->family, flow->daddr)) {
		src = endpoint_of(flow->family, flow->saddr);
		if (service_markable(src))
			return to_service(ctx, cfg, flow, tcp_flags, later_fragment, src, DIR);
	}
	err = policy_gate(ctx, cfg, flow, tcp_flags, ctx->len, l4, later_fragment, 0, &ct_flags);
	if (err)
		return err;
	if (ct_flags & TRELLIS_CT_F_VIA_STACK)
		return to_stack(ctx);

	dst = endpoint_v6(&daddr);
	if (dst) {
		if (cfg->flags & TRELLIS_CONFIG_F_BRIDGE_MODE) {
			count_forward(ctx, DIR, TRELLIS_FWD_LOCAL_BRIDGE);
			return TC_ACT_OK;
		}
		return forward_local_v6(ctx, dst, DIR);
	}
	tun = tunnel_v6(&daddr);
	if (tun)
		return to_tunnel(ctx, cfg, tun, bpf_htons(ETH_P_IPV6), tclass);
	count_forward(ctx, DIR, TRELLIS_FWD_STACK);
	return TC_ACT_OK;
}

/* Returns a TC_ACT_* verdict, or a (negative) drop reason for the exit to report. */
static __always_inline int handle_from_pod(struct __sk_buff *ctx, struct trellis_ct_key *flow)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const struct trellis_config *cfg = config_get();
	struct ethhdr *eth = data;
	int err;

	if (!cfg)
		return TRELLIS_DROP_NO_CONFIG;
	if ((void *)(eth + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;

	switch (eth->h_proto) {
	case bpf_htons(ETH_P_IP):
		return from_pod_ipv4(ctx, cfg, flow);
	case bpf_htons(ETH_P_IPV6):
		return from_pod_ipv6(ctx, cfg, flow);
	case bpf_htons(ETH_P_ARP):
		err = arp_check(ctx);
		if (err)
			return err;
		count_forward(ctx, DIR, TRELLIS_FWD_STACK);
		return TC_ACT_OK;
	default:
		return TRELLIS_DROP_UNSUPPORTED_L3;
	}
}

SEC("tc")
int from_pod(struct __sk_buff *ctx)
{
	struct trellis_ct_key flow = {};
	int ret = handle_from_pod(ctx, &flow);

	if (is_drop(ret))
		return send_drop(ctx, ret, DIR, &flow);
	return ret;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
