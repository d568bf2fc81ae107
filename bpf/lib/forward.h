/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Same-node delivery: rewrite the frame as the node's router would, then redirect into the pod. */
#pragma once

#include "base.h"
#include "metrics.h"

/* Points the frame at the endpoint: destination = pod MAC, source = its host veth MAC. */
static __always_inline int eth_rewrite_for(struct __sk_buff *ctx, const struct trellis_endpoint *ep,
					   __be16 proto)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	mac_copy(eth->h_dest, ep->pod_mac);
	mac_copy(eth->h_source, ep->host_mac);
	eth->h_proto = proto;
	return 0;
}

/*
 * ebpf mode, IPv4 to a pod on this node: decrement the TTL (header checksum updated
 * incrementally, which keeps a CHECKSUM_COMPLETE sum valid), rewrite MACs, bpf_redirect_peer.
 * TTL <= 1 goes to the kernel, which answers "time exceeded".
 */
static __always_inline int forward_local_v4(struct __sk_buff *ctx, const struct trellis_endpoint *dst,
					    __u8 direction)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	__be16 before, after;
	int err;

	if ((void *)(ip + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	if (ip->ttl <= 1) {
		count_forward(ctx, direction, TRELLIS_FWD_STACK);
		return TC_ACT_OK;
	}
	before = *(__be16 *)&ip->ttl; /* TTL and protocol: one checksummed 16-bit word */
	ip->ttl--;
	after = *(__be16 *)&ip->ttl;
	csum_replace2(&ip->check, before, after);

	err = eth_rewrite_for(ctx, dst, bpf_htons(ETH_P_IP));
	if (err)
		return err;
	count_forward(ctx, direction, TRELLIS_FWD_LOCAL_REDIRECT);
	return bpf_redirect_peer(dst->host_ifindex, 0);
}

/*
 * ebpf mode, IPv6 to a pod on this node: decrement the hop limit (no L3 checksum; stored with
 * BPF_F_RECOMPUTE_CSUM so a CHECKSUM_COMPLETE sum follows), rewrite MACs, bpf_redirect_peer.
 */
static __always_inline int forward_local_v6(struct __sk_buff *ctx, const struct trellis_endpoint *dst,
					    __u8 direction)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	__u8 hop_limit;
	int err;

	if ((void *)(ip6 + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	if (ip6->hop_limit <= 1) {
		count_forward(ctx, direction, TRELLIS_FWD_STACK);
		return TC_ACT_OK;
	}
	hop_limit = ip6->hop_limit - 1;
	if (bpf_skb_store_bytes(ctx, ETH_HLEN + offsetof(struct ipv6hdr, hop_limit), &hop_limit,
				sizeof(hop_limit), BPF_F_RECOMPUTE_CSUM) < 0)
		return TRELLIS_DROP_INVALID_PACKET;
	/* store_bytes may have moved the packet: eth_rewrite_for re-reads the pointers. */
	err = eth_rewrite_for(ctx, dst, bpf_htons(ETH_P_IPV6));
	if (err)
		return err;
	count_forward(ctx, direction, TRELLIS_FWD_LOCAL_REDIRECT);
	return bpf_redirect_peer(dst->host_ifindex, 0);
}
