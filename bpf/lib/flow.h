/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The 5-tuple of a packet (struct trellis_ct_key doubles as the flow description of drop events).
 * L4 headers are read with bpf_skb_load_bytes: their offsets vary (IPv4 options, IPv6 extension
 * headers, Geneve options) and a copy keeps the verifier's job simple.
 */
#pragma once

#include "base.h"

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_RST 0x04

struct ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset << 3 | M */
	__be32 identification;
};

/* Records the IPv4 addresses and protocol of a packet in `flow`. */
static __always_inline void flow_set_v4(struct trellis_ct_key *flow, const struct iphdr *ip)
{
	flow->family = TRELLIS_FAMILY_IPV4;
	flow->proto = ip->protocol;
	__builtin_memcpy(flow->saddr, &ip->saddr, 4);
	__builtin_memcpy(flow->daddr, &ip->daddr, 4);
}

/* Records the IPv6 addresses of a packet in `flow` (the protocol comes from ipv6_skip_exthdr). */
static __always_inline void flow_set_v6(struct trellis_ct_key *flow, const struct ipv6hdr *ip6)
{
	flow->family = TRELLIS_FAMILY_IPV6;
	flow->proto = ip6->nexthdr;
	__builtin_memcpy(flow->saddr, &ip6->saddr, 16);
	__builtin_memcpy(flow->daddr, &ip6->daddr, 16);
}

/*
 * Walks up to four IPv6 extension headers (hop-by-hop, routing, destination options, fragment)
 * from `off`. Leaves the upper-layer protocol in flow->proto, sets *later_fragment for a fragment
 * other than the first (it carries no L4 header), and returns the L4 offset, or a drop reason.
 */
static __always_inline int ipv6_skip_exthdr(struct __sk_buff *ctx, __u32 off,
					    struct trellis_ct_key *flow, int *later_fragment)
{
	__u8 nexthdr = flow->proto;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
		    nexthdr == IPPROTO_DSTOPTS) {
			__u8 h[2];

			if (bpf_skb_load_bytes(ctx, off, h, sizeof(h)) < 0)
				return TRELLIS_DROP_INVALID_PACKET;
			nexthdr = h[0];
			off += ((__u32)h[1] + 1) * 8;
		} else if (nexthdr == IPPROTO_FRAGMENT) {
			struct ipv6_frag_hdr fh;

			if (bpf_skb_load_bytes(ctx, off, &fh, sizeof(fh)) < 0)
				return TRELLIS_DROP_INVALID_PACKET;
			nexthdr = fh.nexthdr;
			if (fh.frag_off & bpf_htons(0xfff8))
				*later_fragment = 1;
			off += sizeof(fh);
		} else {
			break;
		}
	}
	flow->proto = nexthdr;
	return off;
}

/*
 * Fills the ports of `flow` from the L4 header at `off` (TCP, UDP, SCTP; for ICMP/ICMPv6 echo both
 * ports carry the identifier, so request and reply are the two directions of one flow) and
 * returns the TCP flags in *tcp_flags. Returns 0 or a drop reason for a truncated header.
 */
static __always_inline int flow_load_ports(struct __sk_buff *ctx, __u32 off,
					   struct trellis_ct_key *flow, __u8 *tcp_flags)
{
	if (flow->proto == IPPROTO_TCP) {
		struct tcphdr th;

		if (bpf_skb_load_bytes(ctx, off, &th, sizeof(th)) < 0)
			return TRELLIS_DROP_INVALID_PACKET;
		flow->sport = th.source;
		flow->dport = th.dest;
		*tcp_flags = ((__u8 *)&th)[13];
	} else if (flow->proto == IPPROTO_UDP || flow->proto == IPPROTO_SCTP) {
		/* Both start with the source and destination ports (SCTP: its common header). */
		__be16 ports[2];

		if (bpf_skb_load_bytes(ctx, off, ports, sizeof(ports)) < 0)
			return TRELLIS_DROP_INVALID_PACKET;
		flow->sport = ports[0];
		flow->dport = ports[1];
	} else if (flow->proto == IPPROTO_ICMP || flow->proto == IPPROTO_ICMPV6) {
		struct icmphdr ih; /* type, code, checksum, echo id/sequence: same in ICMPv6 */

		if (bpf_skb_load_bytes(ctx, off, &ih, sizeof(ih)) < 0)
			return TRELLIS_DROP_INVALID_PACKET;
		if ((flow->proto == IPPROTO_ICMP &&
		     (ih.type == ICMP_ECHO || ih.type == ICMP_ECHOREPLY)) ||
		    (flow->proto == IPPROTO_ICMPV6 &&
		     (ih.type == ICMPV6_ECHO_REQUEST || ih.type == ICMPV6_ECHO_REPLY))) {
			flow->sport = ih.un.echo.id;
			flow->dport = ih.un.echo.id;
		}
	}
	return 0;
}

/* Where the L3 header of an Ethernet frame left off (flow_parse_l3). */
struct l3_info {
	__u32 l4_off;       /* offset of the L4 header */
	int later_fragment; /* a fragment other than the first: no L4 header */
	__u8 tos;           /* IPv4 TOS / IPv6 traffic class */
};

#define FLOW_NOT_IP 1

/*
 * Reads the IPv4 or IPv6 header of the frame into `flow` and `l3`. Returns 0, FLOW_NOT_IP for
 * any other ethertype (ARP, ...), or a drop reason for a malformed header.
 */
static __always_inline int flow_parse_l3(struct __sk_buff *ctx, struct trellis_ct_key *flow, struct l3_info *l3)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
			return TRELLIS_DROP_INVALID_PACKET;
		flow_set_v4(flow, ip);
		l3->tos = ip->tos;
		l3->later_fragment = (ip->frag_off & bpf_htons(IPV4_FRAG_OFFSET)) != 0;
		l3->l4_off = ETH_HLEN + ip->ihl * 4;
		return 0;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		int l4;

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return TRELLIS_DROP_INVALID_PACKET;
		flow_set_v6(flow, ip6);
		l3->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		l4 = ipv6_skip_exthdr(ctx, ETH_HLEN + sizeof(*ip6), flow, &l3->later_fragment);
		if (l4 < 0)
			return l4;
		l3->l4_off = l4;
		return 0;
	}
	return FLOW_NOT_IP;
}
