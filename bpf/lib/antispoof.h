/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Port security: a pod may only send with its own addresses and MAC, from its own veth.
 * The endpoint map is the truth: an address is the pod's when trellis_endpoints maps it to the
 * host veth the packet arrived on and to the frame's source MAC.
 */
#pragma once

#include "base.h"
#include "lookup.h"

/* Checks that `ep` (the endpoint owning the source address, or NULL) is the sender. */
static __always_inline int source_is_endpoint(struct __sk_buff *ctx, const __u8 *src_mac,
					      const struct trellis_endpoint *ep)
{
	if (!ep || ep->host_ifindex != ctx->ifindex)
		return TRELLIS_DROP_SPOOFED_IP;
	if (!mac_equal(src_mac, ep->pod_mac))
		return TRELLIS_DROP_SPOOFED_MAC;
	return 0;
}

#define ARPHRD_ETHER 1

/* An Ethernet/IPv4 ARP packet (linux/if_arp.h pulls in libc headers, so declared here). */
struct arp_ipv4 {
	__be16 ar_hrd;
	__be16 ar_pro;
	__u8 ar_hln;
	__u8 ar_pln;
	__be16 ar_op;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
} __attribute__((packed));

/*
 * ARP from a pod: the sender MAC must be the frame's source and, unless it is an address probe
 * (sender IP 0.0.0.0, RFC 5227), the sender IP/MAC must be an endpoint of this interface.
 */
static __always_inline int arp_check(struct __sk_buff *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct arp_ipv4 *arp = (void *)(eth + 1);
	const struct trellis_endpoint *ep;
	__be32 spa;

	if ((void *)(arp + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	if (arp->ar_hrd != bpf_htons(ARPHRD_ETHER) || arp->ar_pro != bpf_htons(ETH_P_IP) ||
	    arp->ar_hln != ETH_ALEN || arp->ar_pln != 4)
		return TRELLIS_DROP_INVALID_PACKET;
	if (!mac_equal(arp->sha, eth->h_source))
		return TRELLIS_DROP_SPOOFED_ARP;
	__builtin_memcpy(&spa, arp->spa, 4);
	if (spa == 0)
		return 0;
	ep = endpoint_v4(spa);
	if (!ep || ep->host_ifindex != ctx->ifindex || !mac_equal(arp->sha, ep->pod_mac))
		return TRELLIS_DROP_SPOOFED_ARP;
	return 0;
}

/* fe80::/10 */
static __always_inline int ipv6_is_link_local(const struct in6_addr *a)
{
	return a->in6_u.u6_addr8[0] == 0xfe && (a->in6_u.u6_addr8[1] & 0xc0) == 0x80;
}

/* :: */
static __always_inline int ipv6_is_unspecified(const struct in6_addr *a)
{
	return (a->in6_u.u6_addr32[0] | a->in6_u.u6_addr32[1] |
		a->in6_u.u6_addr32[2] | a->in6_u.u6_addr32[3]) == 0;
}

#define ND_ROUTER_SOLICIT 133
#define ND_NEIGHBOUR_SOLICIT 135
#define ND_NEIGHBOUR_ADVERT 136

/* ff02::/16 and the other link-scope multicast groups (scope nibble 2). */
static __always_inline int ipv6_is_link_scope_multicast(const struct in6_addr *a)
{
	return a->in6_u.u6_addr8[0] == 0xff && (a->in6_u.u6_addr8[1] & 0x0f) == 0x02;
}

/*
 * IPv6 source check. Global sources must be an endpoint of this interface. Link-local and
 * unspecified sources (which are not in the endpoint map) are allowed only for neighbour
 * discovery (router solicitation, neighbour solicitation (DAD from ::) and advertisement) and
 * for other link-scope multicast (MLD reports, sent by every pod as its interface comes up):
 * that never leaves the pod's link.
 * A neighbour advertisement, whatever its source, may only announce a link-local target or an
 * address of the sender itself, so a pod cannot poison its neighbours' caches.
 * Sets *nd when the packet is neighbour discovery (it is then handed to the kernel as is).
 */
static __always_inline int ipv6_source_check(struct __sk_buff *ctx, int *nd)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct icmp6hdr *icmp6;
	struct in6_addr target;
	int local_src, err;

	if ((void *)(ip6 + 1) > data_end)
		return TRELLIS_DROP_INVALID_PACKET;
	local_src = ipv6_is_link_local(&ip6->saddr) || ipv6_is_unspecified(&ip6->saddr);
	if (!local_src) {
		err = source_is_endpoint(ctx, eth->h_source, endpoint_v6(&ip6->saddr));
		if (err)
			return err;
	}

	icmp6 = (void *)(ip6 + 1);
	if (ip6->nexthdr != IPPROTO_ICMPV6 || (void *)(icmp6 + 1) > data_end)
		goto not_nd;
	switch (icmp6->icmp6_type) {
	case ND_ROUTER_SOLICIT:
	case ND_NEIGHBOUR_SOLICIT:
		*nd = 1;
		return 0;
	case ND_NEIGHBOUR_ADVERT:
		if (ipv6_is_unspecified(&ip6->saddr))
			return TRELLIS_DROP_LINK_LOCAL;
		if (bpf_skb_load_bytes(ctx, ETH_HLEN + sizeof(*ip6) + sizeof(*icmp6), &target,
				       sizeof(target)) < 0)
			return TRELLIS_DROP_INVALID_PACKET;
		if (!ipv6_is_link_local(&target)) {
			/* eth was checked against the source endpoint; the target must be ours too. */
			data = (void *)(long)ctx->data;
			data_end = (void *)(long)ctx->data_end;
			eth = data;
			if ((void *)(eth + 1) > data_end)
				return TRELLIS_DROP_INVALID_PACKET;
			err = source_is_endpoint(ctx, eth->h_source, endpoint_v6(&target));
			if (err)
				return TRELLIS_DROP_SPOOFED_IP;
		}
		*nd = 1;
		return 0;
	default:
		goto not_nd;
	}
not_nd:
	if (!local_src)
		return 0;
	if (ipv6_is_link_scope_multicast(&ip6->daddr)) {
		*nd = 1;
		return 0;
	}
	return TRELLIS_DROP_LINK_LOCAL;
}
