/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Geneve (RFC 8926) in BPF: the kernel of many nodes has no geneve module, so the programs build
 * and strip the outer IPv4/UDP/Geneve headers themselves with bpf_skb_adjust_room().
 *
 *   encap:  | eth | inner L3 ... |  ->  | eth | IPv4 | UDP 6081 | Geneve | inner eth | inner L3 ... |
 *   decap:  the reverse, at tc ingress of the underlay device, before the stack sees UDP 6081.
 */
#pragma once

#include "base.h"
#include "metrics.h"
#include "flow.h"
#include "forward.h"
#include "lookup.h"

#define GENEVE_VER_SHIFT 6
#define GENEVE_OPTLEN_MASK 0x3f
#define GENEVE_F_OAM 0x80      /* control packet */
#define GENEVE_F_CRITICAL 0x40 /* options the receiver must understand are present */

struct geneve_hdr {
	__u8 ver_optlen; /* version (2 bits) | option length in 4-byte words (6 bits) */
	__u8 flags;      /* O | C | reserved */
	__be16 proto;    /* ethertype of the payload */
	__u8 vni[3];
	__u8 reserved;
};

/* Everything adjust_room makes room for, written in one store. */
struct geneve_encap_hdr {
	struct iphdr ip;
	struct udphdr udp;
	struct geneve_hdr geneve;
	struct ethhdr inner; /* the original frame's Ethernet header */
} __attribute__((packed));

_Static_assert(sizeof(struct geneve_encap_hdr) == TRELLIS_GENEVE_OVERHEAD, "Geneve overhead");

/*
 * Encap flags: the new room is outer IPv4 + UDP, followed by an inner Ethernet header, which sets
 * the skb's inner offsets and SKB_GSO_UDP_TUNNEL so GSO packets are segmented correctly.
 * FIXED_GSO: the pod MTU already leaves room for the overhead, gso_size must stay as it is.
 * NO_CSUM_RESET: keep CHECKSUM_UNNECESSARY (see geneve_encap).
 */
#define GENEVE_ENCAP_FLAGS (BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |      \
			    BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |     \
			    BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN) | BPF_F_ADJ_ROOM_NO_CSUM_RESET)

/*
 * Encapsulates the frame towards `peer` (node IPv4, network order) and redirects it out of the
 * underlay device. `tos` is copied from the inner header (DSCP and ECN travel with the packet).
 * The outer destination MAC comes from the neighbour table: bpf_redirect_neigh without a nexthop
 * does a FIB look-up on the outer destination restricted to the underlay device, so peers behind
 * a router work as well as peers on the same link.
 */
static __always_inline int geneve_encap(struct __sk_buff *ctx, const struct trellis_config *cfg,
					__be32 peer, __u8 tos, __u8 direction)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct geneve_encap_hdr h = {};
	struct iphdr ip = {};
	__be16 outer_proto = bpf_htons(ETH_P_IP);
	__u32 hash, len;

	if ((void *)(eth + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	__builtin_memcpy(&h.inner, eth, sizeof(h.inner));

	/* Flow entropy for the underlay's ECMP/RSS, from the inner headers (before they move). */
	hash = bpf_get_hash_recalc(ctx);

	if (bpf_skb_adjust_room(ctx, TRELLIS_GENEVE_OVERHEAD, BPF_ADJ_ROOM_MAC, GENEVE_ENCAP_FLAGS) < 0)
		return TRELLIS_DROP_ENCAP_FAILED;
	/*
	 * A CHECKSUM_UNNECESSARY skb (inner L4 checksum verified) now also carries an outer UDP
	 * header whose zero checksum needs no verification: one more level is valid. Query first:
	 * INC on a CHECKSUM_NONE skb would claim a verification that never happened.
	 */
	if (bpf_csum_level(ctx, BPF_CSUM_LEVEL_QUERY) >= 0)
		bpf_csum_level(ctx, BPF_CSUM_LEVEL_INC);

	len = ctx->len - ETH_HLEN; /* GSO packets: the kernel rewrites lengths per segment */
	ip.version = 4;
	ip.ihl = 5;
	ip.tos = tos;
	ip.tot_len = bpf_htons(len > 0xffff ? 0xffff : len);
	ip.frag_off = bpf_htons(IPV4_DF);
	ip.ttl = 64;
	ip.protocol = IPPROTO_UDP;
	ip.saddr = cfg->node_ipv4;
	ip.daddr = peer;
	ip.check = ipv4_header_csum(&ip);
	h.ip = ip;

	h.udp.source = bpf_htons((hash & 0x7fff) | 0x8000);
	h.udp.dest = bpf_htons(TRELLIS_GENEVE_PORT);
	len -= sizeof(struct iphdr);
	h.udp.len = bpf_htons(len > 0xffff ? 0xffff : len);
	h.udp.check = 0; /* allowed for IPv4 (RFC 8926 3.3); the inner packet has its own checksums */

	h.geneve.proto = bpf_htons(TRELLIS_GENEVE_PROTO_TEB);
	h.geneve.vni[0] = (cfg->vni >> 16) & 0xff;
	h.geneve.vni[1] = (cfg->vni >> 8) & 0xff;
	h.geneve.vni[2] = cfg->vni & 0xff;

	/* RECOMPUTE_CSUM: the new bytes are inside a CHECKSUM_COMPLETE sum (no-op otherwise). */
	if (bpf_skb_store_bytes(ctx, ETH_HLEN, &h, sizeof(h), BPF_F_RECOMPUTE_CSUM) < 0)
		return TRELLIS_DROP_ENCAP_FAILED;
	/* The outer Ethernet type must say IPv4 (the inner frame may be IPv6). */
	if (bpf_skb_store_bytes(ctx, offsetof(struct ethhdr, h_proto), &outer_proto,
				sizeof(outer_proto), 0) < 0)
		return TRELLIS_DROP_ENCAP_FAILED;

	count_forward(ctx, direction, TRELLIS_FWD_ENCAP);
	return bpf_redirect_neigh(cfg->underlay_ifindex, NULL, 0, 0);
}

/* What geneve_parse learnt about an encapsulated packet. */
struct geneve_info {
	__u32 inner_off; /* offset of the inner Ethernet header */
	__u32 l4_off;    /* offset of the inner L4 header */
	__be16 proto;    /* inner ethertype: IPv4 or IPv6 */
	__u16 pad;
	int later_fragment;
	struct in6_addr daddr; /* inner destination (IPv4 in the first 4 bytes) */
};

/*
 * Validates the Geneve header behind the outer UDP header at `geneve_off` and reads the inner
 * frame's L3 header into `flow`. Returns 0 or a drop reason.
 */
static __always_inline int geneve_parse(struct __sk_buff *ctx, const struct trellis_config *cfg,
					__u32 geneve_off, struct trellis_ct_key *flow,
					struct geneve_info *info)
{
	struct geneve_hdr g;
	struct ethhdr inner;
	__u32 vni, off;

	if (bpf_skb_load_bytes(ctx, geneve_off, &g, sizeof(g)) < 0)
		return TRELLIS_DROP_BAD_GENEVE;
	if ((g.ver_optlen >> GENEVE_VER_SHIFT) != 0)
		return TRELLIS_DROP_BAD_GENEVE;
	if (g.flags & (GENEVE_F_OAM | GENEVE_F_CRITICAL))
		return TRELLIS_DROP_GENEVE_UNSUPPORTED;
	if (g.proto != bpf_htons(TRELLIS_GENEVE_PROTO_TEB))
		return TRELLIS_DROP_BAD_GENEVE;
	vni = ((__u32)g.vni[0] << 16) | ((__u32)g.vni[1] << 8) | g.vni[2];
	if (vni != cfg->vni)
		return TRELLIS_DROP_WRONG_VNI;

	/* Options (non-critical ones) are skipped: opt_len counts 4-byte words. */
	off = geneve_off + sizeof(g) + (g.ver_optlen & GENEVE_OPTLEN_MASK) * 4;
	if (bpf_skb_load_bytes(ctx, off, &inner, sizeof(inner)) < 0)
		return TRELLIS_DROP_BAD_GENEVE;
	info->inner_off = off;
	info->proto = inner.h_proto;
	off += sizeof(inner);

	if (inner.h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(ctx, off, &ip, sizeof(ip)) < 0)
			return TRELLIS_DROP_INVALID_PACKET;
		if (ip.version != 4 || ip.ihl < 5)
			return TRELLIS_DROP_INVALID_PACKET;
		flow_set_v4(flow, &ip);
		__builtin_memcpy(&info->daddr, &ip.daddr, 4);
		info->l4_off = off + ip.ihl * 4;
		info->later_fragment = (ip.frag_off & bpf_htons(IPV4_FRAG_OFFSET)) != 0;
		return 0;
	}
	if (inner.h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		int l4;

		if (bpf_skb_load_bytes(ctx, off, &ip6, sizeof(ip6)) < 0)
			return TRELLIS_DROP_INVALID_PACKET;
		if (ip6.version != 6)
			return TRELLIS_DROP_INVALID_PACKET;
		flow_set_v6(flow, &ip6);
		__builtin_memcpy(&info->daddr, &ip6.daddr, 16);
		l4 = ipv6_skip_exthdr(ctx, off + sizeof(ip6), flow, &info->later_fragment);
		if (l4 < 0)
			return l4;
		info->l4_off = l4;
		return 0;
	}
	return TRELLIS_DROP_INNER_NOT_IP;
}

/*
 * Strips everything between the outer Ethernet header and the inner L3 header (outer IPv4, UDP,
 * Geneve with options, inner Ethernet). Every packet pointer is stale afterwards.
 */
static __always_inline int geneve_strip(struct __sk_buff *ctx, const struct geneve_info *info)
{
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_NO_CSUM_RESET;
	/* From the outer L3 header (at ETH_HLEN) to the inner L3 header (inner_off + ETH_HLEN). */
	__s32 shrink = info->inner_off;

	/* DECAP_L3_*: the length check uses the inner family's header, and skb->protocol follows it. */
	flags |= info->proto == bpf_htons(ETH_P_IPV6) ? TRELLIS_ADJ_ROOM_DECAP_L3_IPV6
						      : TRELLIS_ADJ_ROOM_DECAP_L3_IPV4;
	if (bpf_skb_adjust_room(ctx, -shrink, BPF_ADJ_ROOM_MAC, flags) < 0)
		return TRELLIS_DROP_DECAP_FAILED;
	/*
	 * NO_CSUM_RESET kept the NIC's verdict; its outermost verified checksum was the outer UDP
	 * one (a zero UDP checksum counts), which is gone: one level down. A NIC that verified the
	 * inner TCP/UDP too (csum_level 1) leaves it trusted; one that did not ends at CHECKSUM_NONE
	 * and the pod's stack verifies. CHECKSUM_COMPLETE was kept exact by adjust_room itself.
	 */
	bpf_csum_level(ctx, BPF_CSUM_LEVEL_DEC);
	return 0;
}

/*
 * Decapsulates, points the frame at the endpoint and delivers it into the pod with
 * bpf_redirect_peer. On 6.18 the skb keeps the UDP-tunnel GSO type and encapsulation bit, which
 * is harmless for a pod but risky if such a packet were forwarded and segmented again.
 */
static __always_inline int geneve_decap(struct __sk_buff *ctx, const struct geneve_info *info,
					const struct trellis_endpoint *ep, __u8 direction)
{
	int err = geneve_strip(ctx, info);

	if (err)
		return err;
	err = eth_rewrite_for(ctx, ep, info->proto);
	if (err)
		return err;
	count_forward(ctx, direction, TRELLIS_FWD_DECAP);
	return bpf_redirect_peer(ep->host_ifindex, 0);
}

/*
 * Decapsulates a packet of a flow the node's stack routed into the overlay (kube-proxy's DNAT,
 * a masquerade, the node's own traffic) and hands it to the stack as if it had arrived on the
 * overlay device, so that the stack undoes its NAT and delivers or forwards it; rp_filter is
 * satisfied, the stack routes the remote pod CIDRs through that device. A GSO skb keeps its
 * tunnel GSO type (see geneve_decap): forwarded to a pod's veth, which takes every GSO type, it
 * is not segmented again; on a real NIC received packets are not GSO here (no GRO on this path).
 */
static __always_inline int geneve_decap_to_stack(struct __sk_buff *ctx, const struct trellis_config *cfg,
						 const struct geneve_info *info, __u8 direction)
{
	void *data, *data_end;
	struct ethhdr *eth;
	int err;

	if (!cfg->overlay_ifindex)
		return TRELLIS_DROP_NO_CONFIG;
	err = geneve_strip(ctx, info);
	if (err)
		return err;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	/* Addressed to the overlay device, or its receive path would take it for another host's. */
	mac_copy(eth->h_dest, cfg->overlay_mac);
	mac_copy(eth->h_source, cfg->overlay_mac);
	eth->h_proto = info->proto;
	count_forward(ctx, direction, TRELLIS_FWD_DECAP_STACK);
	return bpf_redirect(cfg->overlay_ifindex, BPF_F_INGRESS);
}
