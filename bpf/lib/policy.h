/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * NetworkPolicy in the datapath: a stateful gate every program runs on an IP packet before
 * delivering it.
 *
 * A connection is checked on its first packet: egress at its source if that is a pod of this
 * node, ingress at its destination if that is a pod of this node (so a connection between two
 * nodes is checked at both, each on its own node). Allowed, it is tracked, and the rest of it
 * passes in both directions without policy lookups. The lookups cost the same whatever the
 * number of policies: one LPM lookup in the ipcache for the other end's identities, then at
 * most three in trellis_policy (its label identity, the CIDR identity of the ipBlocks around
 * it, "any peer").
 *
 * When the agent changes policy or identities it bumps trellis_config.policy_gen; a tracked
 * flow from an older generation is checked again (its original direction) on its next packet,
 * in either direction, and forgotten if policy no longer allows it.
 */
#pragma once

#include "base.h"
#include "maps.h"
#include "flow.h"
#include "conntrack.h"

/* Whether policy ports can name this protocol's ports (the others match port-less rules only). */
static __always_inline int proto_has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

/* The local endpoint owning an address of a flow key (family tag and 16 bytes), or NULL. */
static __always_inline const struct trellis_endpoint *endpoint_of(__u8 family, const __u8 *addr)
{
	struct trellis_ip_key k = { .family = family };

	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&trellis_endpoints, &k);
}

/*
 * Whether the entries of `policy_id` allow traffic in `direction` with the peer at `peer_addr`
 * (protocol and destination port of the connection).
 */
static __always_inline int policy_allows(__u32 policy_id, __u8 direction, __u8 family, const __u8 *peer_addr,
					 __u8 proto, __be16 dport)
{
	struct trellis_lpm_key where = {
		.prefixlen = TRELLIS_LPM_TAG_BITS + (family == TRELLIS_FAMILY_IPV4 ? 32 : 128),
		.family = family,
	};
	const struct trellis_ipcache_entry *peer;
	struct trellis_policy_key k = {
		.prefixlen = TRELLIS_POLICY_FULL_BITS,
		.policy_id = policy_id,
		.direction = direction,
		.proto = proto,
		.dport = proto_has_ports(proto) ? dport : 0,
	};
	__u32 cidr_id;

	__builtin_memcpy(where.addr, peer_addr, 16);
	peer = bpf_map_lookup_elem(&trellis_ipcache, &where);
	k.peer = peer ? peer->identity : TRELLIS_IDENTITY_WORLD;
	cidr_id = peer ? peer->cidr_identity : 0;

	if (bpf_map_lookup_elem(&trellis_policy, &k))
		return 1;
	if (cidr_id && cidr_id != k.peer) {
		k.peer = cidr_id;
		if (bpf_map_lookup_elem(&trellis_policy, &k))
			return 1;
	}
	k.peer = TRELLIS_IDENTITY_ANY;
	return bpf_map_lookup_elem(&trellis_policy, &k) != NULL;
}

/*
 * Checks a connection in its original direction at every end that is a pod of this node.
 * Returns 0 or the drop reason. A pod with no entries at all (not programmed yet) is denied
 * everything: the datapath fails closed.
 */
static __always_inline int policy_check(const struct trellis_ct_key *orig)
{
	const struct trellis_endpoint *src = endpoint_of(orig->family, orig->saddr);
	const struct trellis_endpoint *dst = endpoint_of(orig->family, orig->daddr);

	if (src && !policy_allows(src->policy_id, TRELLIS_POLICY_EGRESS, orig->family, orig->daddr,
				  orig->proto, orig->dport))
		return TRELLIS_DROP_POLICY_EGRESS;
	if (dst && !policy_allows(dst->policy_id, TRELLIS_POLICY_INGRESS, orig->family, orig->saddr,
				  orig->proto, orig->dport))
		return TRELLIS_DROP_POLICY_INGRESS;
	return 0;
}

/* ICMP errors that quote the packet they are about (RFC 792, RFC 4443). */
static __always_inline int is_icmp_error(__u8 proto, __u8 type)
{
	if (proto == IPPROTO_ICMP)
		return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
	if (proto == IPPROTO_ICMPV6)
		return type == ICMPV6_DEST_UNREACH || type == ICMPV6_PKT_TOOBIG || type == ICMPV6_TIME_EXCEED ||
		       type == ICMPV6_PARAMPROB;
	return 0;
}

/*
 * Whether an untracked ICMP error at `l4_off` is about a tracked flow: "port unreachable",
 * "fragmentation needed" (path MTU discovery needs it), "time exceeded" for a connection a pod
 * has. The quoted packet is one the error's destination sent, so its source must be the error's
 * destination; then its flow (either direction) must be tracked. `*ct_flags`: that flow's flags.
 */
static __always_inline int icmp_error_related(struct __sk_buff *ctx, __u32 l4_off, const struct trellis_ct_key *flow,
					      __u32 *ct_flags)
{
	struct trellis_ct_key quoted = {}, rev;
	struct trellis_ct_entry *e;
	__u8 type;
	__u32 inner_l4;

	if (bpf_skb_load_bytes(ctx, l4_off, &type, 1) < 0 || !is_icmp_error(flow->proto, type))
		return 0;
	/* The quoted L3 header follows the 8-byte ICMP header. */
	if (flow->family == TRELLIS_FAMILY_IPV4) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(ctx, l4_off + 8, &ip, sizeof(ip)) < 0 || ip.version != 4 || ip.ihl < 5)
			return 0;
		flow_set_v4(&quoted, &ip);
		inner_l4 = l4_off + 8 + ip.ihl * 4;
	} else {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(ctx, l4_off + 8, &ip6, sizeof(ip6)) < 0 || ip6.version != 6)
			return 0;
		flow_set_v6(&quoted, &ip6);
		inner_l4 = l4_off + 8 + sizeof(ip6); /* extension headers in a quote: not related */
	}
	if (!addr16_equal(quoted.saddr, flow->daddr))
		return 0;
	if (proto_has_ports(quoted.proto) || quoted.proto == IPPROTO_ICMP || quoted.proto == IPPROTO_ICMPV6) {
		__u8 unused = 0;

		/* A quote holds at least 8 bytes of L4: ports, or the echo identifier. */
		if (flow_load_ports(ctx, inner_l4, &quoted, &unused) < 0)
			return 0;
	}
	e = bpf_map_lookup_elem(&trellis_conntrack, &quoted);
	if (!e) {
		ct_reverse(&rev, &quoted);
		e = bpf_map_lookup_elem(&trellis_conntrack, &rev);
	}
	if (!e)
		return 0;
	*ct_flags = e->flags;
	return 1;
}

/*
 * The gate: lets a packet of `flow` (ports loaded unless `later_fragment`; L4 header at
 * `l4_off`) through, tracking it, or returns the drop reason. A flow it starts tracking gets
 * `create_flags` (TRELLIS_CT_F_VIA_STACK where the node's stack routed the packet); `*ct_flags`
 * says how the packet's flow travels (0 when untracked), so that the replies of a flow the
 * stack routed go back through it.
 *
 * Non-first fragments carry no ports and pass: the first fragment, which has them, is checked,
 * and without it the receiver cannot reassemble (the kernel drops overlapping fragments).
 */
static __always_inline int policy_gate(struct __sk_buff *ctx, const struct trellis_config *cfg,
				       const struct trellis_ct_key *flow, __u8 tcp_flags, __u32 len,
				       __u32 l4_off, int later_fragment, __u32 create_flags, __u32 *ct_flags)
{
	struct trellis_ct_key orig;
	struct trellis_ct_entry *e;
	int status, err;

	*ct_flags = 0;
	if (later_fragment)
		return 0;
	e = ct_lookup(flow, &status, &orig);
	if (e) {
		*ct_flags = e->flags;
		/*
		 * The reply of a pod's Service connection, from the Service address after the de-NAT:
		 * policy was checked (and is checked again) on the flow to the backend, whose replies
		 * these are. Its original direction never comes here (from_pod hands it to the stack).
		 */
		if (status == CT_REPLY && (e->flags & TRELLIS_CT_F_SERVICE)) {
			ct_account(e, status, tcp_flags, len);
			return 0;
		}
	}
	if (e && status != CT_NEW && e->policy_gen == cfg->policy_gen) {
		ct_account(e, status, tcp_flags, len);
		return 0;
	}
	if (!e && (flow->proto == IPPROTO_ICMP || flow->proto == IPPROTO_ICMPV6) &&
	    icmp_error_related(ctx, l4_off, flow, ct_flags))
		return 0;

	err = policy_check(&orig);
	if (err) {
		if (e)
			ct_forget(&orig);
		return err;
	}
	if (e) {
		e->policy_gen = cfg->policy_gen;
		ct_account(e, status, tcp_flags, len);
	} else {
		ct_create(flow, tcp_flags, len, cfg->policy_gen, create_flags);
		*ct_flags = create_flags;
	}
	return 0;
}
