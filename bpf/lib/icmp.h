/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * "Too big for the tunnel" answers. A pod whose MTU exceeds underlay MTU - 50 would otherwise see
 * its DF packets vanish at the underlay device (a PMTU black hole): instead the frame is turned
 * into ICMP "fragmentation needed" (IPv4) or ICMPv6 "packet too big" carrying the tunnel MTU, and
 * sent back into the pod, as the kernel's own tunnel devices do.
 */
#pragma once

#include "base.h"
#include "metrics.h"

/* Bytes of the offending packet quoted in the error. Enough for any L3 + L4 header (and more
 * than the csum_start + csum_offset of a CHECKSUM_PARTIAL skb, below which the skb cannot be
 * trimmed), far below the 576/1280-byte limits. A multiple of 4 for bpf_csum_diff. */
#define ICMP_QUOTE_LEN 128

/* Naturally packed: 20 + 8 and 40 + 8 bytes, no padding. */
struct icmp4_error_hdr {
	struct iphdr ip;
	struct icmphdr icmp;
};

struct icmp6_error_hdr {
	struct ipv6hdr ip6;
	struct icmp6hdr icmp6;
};

/* The IPv6 pseudo-header of the ICMPv6 checksum. */
struct ipv6_pseudo_hdr {
	struct in6_addr saddr;
	struct in6_addr daddr;
	__be32 len;
	__be32 nexthdr;
};

/*
 * Rebuilds the frame as | eth | new L3 + ICMP header (hdr_len) | quoted original packet | and
 * swaps the MACs so it goes back to the sender. The caller writes the header afterwards.
 */
static __always_inline int icmp_make_room(struct __sk_buff *ctx, __u32 hdr_len, __u8 *quote)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 pod_mac[6], router_mac[6];

	if ((void *)(eth + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	mac_copy(pod_mac, eth->h_source);
	mac_copy(router_mac, eth->h_dest);
	if (bpf_skb_load_bytes(ctx, ETH_HLEN, quote, ICMP_QUOTE_LEN) < 0)
		return TRELLIS_DROP_FRAG_NEEDED;
	/* Room first, then trim: the trim must not cut below a CHECKSUM_PARTIAL skb's csum field. */
	if (bpf_skb_adjust_room(ctx, hdr_len, BPF_ADJ_ROOM_MAC, 0) < 0)
		return TRELLIS_DROP_FRAG_NEEDED;
	if (bpf_skb_change_tail(ctx, ETH_HLEN + hdr_len + ICMP_QUOTE_LEN, 0) < 0)
		return TRELLIS_DROP_FRAG_NEEDED;

	/* Pointers are stale after adjust_room/change_tail: load them again. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return TRELLIS_DROP_FRAG_NEEDED;
	mac_copy(eth->h_dest, pod_mac);
	mac_copy(eth->h_source, router_mac);
	return 0;
}

/*
 * IPv4 packet of a pod that does not fit the tunnel (`tunnel_mtu` = underlay MTU - 50): with DF,
 * answer "fragmentation needed" from the pod's router address and deliver it into the pod.
 * Without DF the packet would have to be fragmented inside the tunnel, which this datapath does
 * not do: it is dropped and counted (the pod MTU must leave room for the overhead).
 */
static __always_inline int icmp4_frag_needed(struct __sk_buff *ctx, const struct trellis_config *cfg,
					     __u32 tunnel_mtu, __u8 direction)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	struct icmp4_error_hdr h = {};
	__u8 quote[ICMP_QUOTE_LEN];
	__be32 pod_ip;
	__u32 sum;
	int err;

	if ((void *)(ip + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	if (!(ip->frag_off & bpf_htons(IPV4_DF)) || (ip->frag_off & bpf_htons(IPV4_FRAG_OFFSET)))
		return TRELLIS_DROP_FRAG_NEEDED;
	pod_ip = ip->saddr;

	err = icmp_make_room(ctx, sizeof(h), quote);
	if (err)
		return err;

	h.icmp.type = ICMP_DEST_UNREACH;
	h.icmp.code = ICMP_FRAG_NEEDED;
	h.icmp.un.frag.mtu = bpf_htons(tunnel_mtu);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&h.icmp, sizeof(h.icmp), 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)quote, sizeof(quote), sum);
	h.icmp.checksum = ~csum_fold32(sum);

	h.ip.version = 4;
	h.ip.ihl = 5;
	h.ip.tos = 0xc0; /* internetwork control, as the kernel's ICMP errors */
	h.ip.tot_len = bpf_htons(sizeof(h) + ICMP_QUOTE_LEN);
	h.ip.ttl = 64;
	h.ip.protocol = IPPROTO_ICMP;
	h.ip.saddr = cfg->router_ipv4 ? cfg->router_ipv4 : cfg->node_ipv4;
	h.ip.daddr = pod_ip;
	h.ip.check = ipv4_header_csum(&h.ip);
	if (bpf_skb_store_bytes(ctx, ETH_HLEN, &h, sizeof(h), BPF_F_RECOMPUTE_CSUM) < 0)
		return TRELLIS_DROP_FRAG_NEEDED;

	count_forward(ctx, direction, TRELLIS_FWD_FRAG_NEEDED);
	/* Back into the pod: the peer of the host veth this program runs on. */
	return bpf_redirect_peer(ctx->ifindex, 0);
}

/* True when every byte of the 16-byte address is zero. */
static __always_inline int ipv6_addr_unset(const __u8 *a)
{
	__u64 hi, lo;

	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&lo, a + 8, 8);
	return (hi | lo) == 0;
}

/*
 * IPv6 packet of a pod that does not fit the tunnel: answer ICMPv6 "packet too big" from the
 * pod's router address (config router_ipv6) and deliver it into the pod. Without a router
 * address the packet is dropped and counted. Never answers an ICMPv6 error.
 */
static __always_inline int icmp6_packet_too_big(struct __sk_buff *ctx, const struct trellis_config *cfg,
						__u32 tunnel_mtu, __u8 direction)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	struct icmp6_error_hdr h = {};
	struct ipv6_pseudo_hdr ph = {};
	__u8 quote[ICMP_QUOTE_LEN];
	__u32 sum;
	int err;

	if ((void *)(ip6 + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	if (ipv6_addr_unset(cfg->router_ipv6))
		return TRELLIS_DROP_FRAG_NEEDED;
	if (ip6->nexthdr == IPPROTO_ICMPV6) {
		struct icmp6hdr *orig = (void *)(ip6 + 1);

		if ((void *)(orig + 1) > data_end || orig->icmp6_type < 128)
			return TRELLIS_DROP_FRAG_NEEDED;
	}
	__builtin_memcpy(&h.ip6.daddr, &ip6->saddr, sizeof(h.ip6.daddr));

	err = icmp_make_room(ctx, sizeof(h), quote);
	if (err)
		return err;

	h.ip6.version = 6;
	h.ip6.payload_len = bpf_htons(sizeof(h.icmp6) + ICMP_QUOTE_LEN);
	h.ip6.nexthdr = IPPROTO_ICMPV6;
	h.ip6.hop_limit = 64;
	__builtin_memcpy(&h.ip6.saddr, cfg->router_ipv6, sizeof(h.ip6.saddr));
	h.icmp6.icmp6_type = ICMPV6_PKT_TOOBIG;
	h.icmp6.icmp6_mtu = bpf_htonl(tunnel_mtu);

	ph.saddr = h.ip6.saddr;
	ph.daddr = h.ip6.daddr;
	ph.len = bpf_htonl(sizeof(h.icmp6) + ICMP_QUOTE_LEN);
	ph.nexthdr = bpf_htonl(IPPROTO_ICMPV6);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&h.icmp6, sizeof(h.icmp6), sum);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)quote, sizeof(quote), sum);
	h.icmp6.icmp6_cksum = ~csum_fold32(sum);
	if (bpf_skb_store_bytes(ctx, ETH_HLEN, &h, sizeof(h), BPF_F_RECOMPUTE_CSUM) < 0)
		return TRELLIS_DROP_FRAG_NEEDED;

	count_forward(ctx, direction, TRELLIS_FWD_FRAG_NEEDED);
	return bpf_redirect_peer(ctx->ifindex, 0);
}

/*
 * Checks that the frame fits the underlay once encapsulated. Returns 0 when it does, otherwise
 * the verdict of answering it (ICMP sent back: TC_ACT_REDIRECT) or a drop reason. GSO packets
 * are checked per segment by the kernel helper, and fit when the pod MTU is right.
 */
static __always_inline int tunnel_mtu_check(struct __sk_buff *ctx, const struct trellis_config *cfg,
					    __be16 proto, __u8 direction)
{
	__u32 mtu = 0;
	long ret;

	ret = bpf_check_mtu(ctx, cfg->underlay_ifindex, &mtu, TRELLIS_GENEVE_OVERHEAD, 0);
	if (ret == BPF_MTU_CHK_RET_SUCCESS)
		return 0;
	if (ret < 0)
		return TRELLIS_DROP_NO_CONFIG; /* no such underlay device */
	if (mtu <= TRELLIS_GENEVE_OVERHEAD)
		return TRELLIS_DROP_FRAG_NEEDED;
	mtu -= TRELLIS_GENEVE_OVERHEAD;
	if (proto == bpf_htons(ETH_P_IP))
		return icmp4_frag_needed(ctx, cfg, mtu, direction);
	return icmp6_packet_too_big(ctx, cfg, mtu, direction);
}
