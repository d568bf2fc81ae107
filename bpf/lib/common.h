/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Layouts and codes shared by the BPF programs and user space.
 *
 * The Swift side imports this very header (Sources/CTrellisBPF), so a map key or value has one
 * definition. Rules: fixed-width types only, no implicit padding (every hole is an explicit
 * `pad` field, which must be zero in keys), addresses and ports in network byte order. Sizes
 * are asserted in Sources/CTrellisBPF/layout.c; changing a layout changes the pinned maps'
 * key/value sizes, and the loader then replaces those maps (see Datapath.load).
 */
#pragma once

#include <linux/types.h>

/* Geneve (RFC 8926). */
#define TRELLIS_GENEVE_PORT 6081
#define TRELLIS_GENEVE_PROTO_TEB 0x6558 /* inner payload is an Ethernet frame */
/* Outer IPv4 20 + UDP 8 + Geneve 8 (no options) + inner Ethernet 14. */
#define TRELLIS_GENEVE_OVERHEAD 50

/* Address family tags of keys (not AF_* values: those differ between systems). */
enum trellis_family {
	TRELLIS_FAMILY_IPV4 = 4,
	TRELLIS_FAMILY_IPV6 = 6,
};

/* An IPv4 or IPv6 address as a hash key. IPv4 uses addr[0..3], the rest stays zero. */
struct trellis_ip_key {
	__u8 family; /* enum trellis_family */
	__u8 pad[3];
	__u8 addr[16];
};

/*
 * An LPM trie key. The trie matches `prefixlen` bits of everything after it, so the family
 * byte and the padding are part of the match: prefixlen = 32 + the address prefix length.
 */
struct trellis_lpm_key {
	__u32 prefixlen;
	__u8 family; /* enum trellis_family */
	__u8 pad[3];
	__u8 addr[16];
};
#define TRELLIS_LPM_TAG_BITS 32

/* trellis_endpoints value: a pod address on this node. */
struct trellis_endpoint {
	__u32 host_ifindex; /* the pod's host-side veth */
	__u32 identity;     /* the pod's label identity (what the ipcache says of its addresses) */
	__u32 policy_id;    /* the key of its entries in trellis_policy; 0: none, traffic is denied */
	__u8 pod_mac[6];    /* MAC of the pod's interface */
	__u8 host_mac[6];   /* MAC of the host-side veth (the pod's gateway neighbour) */
};

/*
 * Security identities with a fixed meaning (the others are numbered by the agent: label
 * identities from 256, CIDR identities from 0x01000000; see Sources/TrellisPolicy/Identity.swift).
 */
enum trellis_reserved_identity {
	TRELLIS_IDENTITY_ANY = 0,   /* wildcard peer of a policy entry; never an address's */
	TRELLIS_IDENTITY_HOST = 1,  /* this node's own addresses */
	TRELLIS_IDENTITY_WORLD = 2, /* an address no ipcache entry covers */
};

/*
 * trellis_ipcache value: the identities of an address range. An ipBlock applies to pod
 * addresses too, and the trie finds a pod's /32 before the ipBlock's prefix, so a pod's entry
 * carries both its label identity and the CIDR identity of the ipBlocks around it.
 */
struct trellis_ipcache_entry {
	__u32 identity;      /* label identity of a pod, HOST, or the CIDR identity of a prefix */
	__u32 cidr_identity; /* the CIDR identity of the ipBlocks containing the range; 0: none */
};

/* Which end of a connection a policy entry is about, seen from the local pod. */
enum trellis_policy_direction {
	TRELLIS_POLICY_INGRESS = 1, /* towards the pod */
	TRELLIS_POLICY_EGRESS = 2,  /* from the pod */
};

/*
 * trellis_policy key (an LPM trie): one allow entry of a local pod. The trie matches
 * `prefixlen` bits of what follows: 72 = endpoint, peer and direction (every protocol and
 * port); 80 = also the protocol (every port of it); 80 + n = also the first n bits of dport
 * (96: exactly dport). An endPort range becomes a few such aligned blocks. The map holds
 * allows only: a packet with no matching entry is denied.
 */
struct trellis_policy_key {
	__u32 prefixlen;
	__u32 policy_id; /* trellis_endpoint.policy_id of the local pod */
	__u32 peer;      /* identity of the other end; TRELLIS_IDENTITY_ANY for any */
	__u8 direction;  /* enum trellis_policy_direction */
	__u8 proto;      /* IPPROTO_* */
	__be16 dport;    /* network order; 0 for protocols without ports */
};
#define TRELLIS_POLICY_FULL_BITS 96

/* trellis_policy value. */
struct trellis_policy_value {
	__u32 flags; /* reserved, 0 */
};

/* trellis_tunnels value: where a remote pod CIDR lives. */
struct trellis_tunnel {
	__u32 node_ipv4; /* network order */
	__u32 flags;
};

/* trellis_peers value: a node whose Geneve packets are accepted (key: its IPv4, network order). */
struct trellis_peer {
	__u32 flags;
};

/*
 * trellis_services value (key: struct trellis_ip_key): an address the node's stack translates
 * (a Service's ClusterIP, external IP or load-balancer IP, which kube-proxy DNATs). A pod's
 * connection to one is handed to the stack, and its egress policy is checked after the
 * translation, against the backend actually chosen (see the mark below).
 */
struct trellis_service {
	__u32 flags; /* reserved, 0 */
};

/*
 * skb->mark of a pod's packet to a Service address, set where it leaves the pod: the tag, and
 * the pod's policy id (24 bits: bits 0-7 and 16-31), so that the egress check on the underlay
 * device knows whose packet it is after kube-proxy's DNAT and a masquerade rewrote it. Bits 8-11
 * hold the tag; kube-proxy's 0x4000 (masquerade) and 0x8000 (drop) are never touched.
 */
#define TRELLIS_MARK_TAG_MASK 0x00000F00u
#define TRELLIS_MARK_SERVICE 0x00000E00u
#define TRELLIS_MARK_ID_MASK 0xFFFF00FFu
#define TRELLIS_MARK_ID_MAX 0x00FFFFFFu

static inline __u32 trellis_mark_service(__u32 policy_id)
{
	return TRELLIS_MARK_SERVICE | (policy_id & 0xFFu) | ((policy_id >> 8) << 16);
}

static inline __u32 trellis_mark_policy_id(__u32 mark)
{
	return (mark & 0xFFu) | ((mark >> 16) << 8);
}

/* trellis_conntrack key: a flow in the direction of its first packet. */
struct trellis_ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* network order; ICMP echo: the identifier; else 0 */
	__u16 dport; /* network order */
	__u8 proto;
	__u8 family; /* enum trellis_family */
	__u8 pad[2];
};

enum trellis_ct_flags {
	TRELLIS_CT_F_SEEN_REPLY = 1 << 0, /* a packet went the other way: established */
	TRELLIS_CT_F_CLOSING = 1 << 1,    /* TCP FIN or RST seen */
	/*
	 * The node's stack routed the flow's first packet (kube-proxy's DNAT, the node's own
	 * traffic, a NodePort): its replies go back through the stack, which undoes its NAT,
	 * instead of being delivered straight to their destination.
	 */
	TRELLIS_CT_F_VIA_STACK = 1 << 2,
	/*
	 * A pod's connection to a Service address (trellis_services). Its egress policy is
	 * checked after the stack's translation, on the flow to the backend; this entry only
	 * lets the replies (from the Service address, after the de-NAT) back in.
	 */
	TRELLIS_CT_F_SERVICE = 1 << 3,
};

/* trellis_conntrack value. */
struct trellis_ct_entry {
	__u64 created_ns;   /* bpf_ktime_get_ns() of the first packet */
	__u64 last_seen_ns; /* of the latest packet, either way */
	__u64 packets;      /* both directions */
	__u64 bytes;
	__u32 flags;        /* enum trellis_ct_flags */
	__u32 policy_gen;   /* trellis_config.policy_gen when policy last allowed the flow */
	__u8 tcp_flags_orig;  /* union of TCP flags seen from the originator */
	__u8 tcp_flags_reply; /* and from the responder */
	__u8 pad[6];
};

/* Where in the datapath something happened. */
enum trellis_direction {
	TRELLIS_DIR_FROM_POD = 1,      /* tc ingress of a pod's host veth */
	TRELLIS_DIR_TO_POD = 2,        /* tc egress of a pod's host veth: what the kernel delivers to it */
	TRELLIS_DIR_FROM_UNDERLAY = 3, /* tc ingress of the underlay device */
	TRELLIS_DIR_TO_OVERLAY = 4,    /* tc egress of the overlay device: the node's stack into the overlay */
	TRELLIS_DIR_TO_UNDERLAY = 5,   /* tc egress of the underlay device: Service traffic leaving the node */
	TRELLIS_DIR_END,               /* not a direction: one past the last (user space checks its names against it) */
};

enum trellis_metric_kind {
	TRELLIS_METRIC_FORWARD = 1, /* code: enum trellis_forward */
	TRELLIS_METRIC_DROP = 2,    /* code: enum trellis_drop_reason (negative) */
};

/* What the datapath did with a packet it let through. */
enum trellis_forward {
	TRELLIS_FWD_LOCAL_REDIRECT = 1, /* ebpf mode: redirected into a pod on this node */
	TRELLIS_FWD_LOCAL_BRIDGE = 2,   /* bridge mode: to a pod on this node, switched by the bridge */
	TRELLIS_FWD_ENCAP = 3,          /* Geneve-encapsulated to a peer node */
	TRELLIS_FWD_DECAP = 4,          /* decapsulated and delivered into a pod */
	TRELLIS_FWD_STACK = 5,          /* handed to the kernel (node, outside, ARP, ND) */
	TRELLIS_FWD_FRAG_NEEDED = 6,    /* too big for the tunnel: answered with ICMP frag needed / packet too big */
	TRELLIS_FWD_NOT_GENEVE = 7,     /* underlay traffic that is not ours, left untouched */
	TRELLIS_FWD_TO_POD = 8,         /* delivered to a pod through its host veth (bridge mode) */
	TRELLIS_FWD_DECAP_STACK = 9,    /* decapsulated and handed to the node's stack (a flow it routed) */
	TRELLIS_FWD_SERVICE = 10,       /* to a Service address: left to the stack's translation */
	TRELLIS_FWD_END,                /* not a kind: one past the last (user space checks its names against it) */
};

/*
 * Why a packet was dropped. Negative, so a handler returns either a TC_ACT_* verdict (>= 0) or
 * one of these, and each program's single exit counts and reports the drop.
 * Values are stable (they are stored in pinned maps) and contiguous, counting down: a new reason
 * takes TRELLIS_DROP_REASON_MIN - 1 and becomes the new TRELLIS_DROP_REASON_MIN. The Swift enum
 * DropReason (Sources/TrellisCore) names them; its test walks [MIN, MAX] through this header and
 * fails on a code without a Swift name.
 */
enum trellis_drop_reason {
	TRELLIS_DROP_INVALID_PACKET = -130,      /* truncated or malformed headers */
	TRELLIS_DROP_UNSUPPORTED_L3 = -131,      /* from a pod: neither IPv4, IPv6 nor ARP */
	TRELLIS_DROP_SPOOFED_IP = -132,          /* source address not an endpoint of this interface */
	TRELLIS_DROP_SPOOFED_MAC = -133,         /* source MAC not the endpoint's */
	TRELLIS_DROP_SPOOFED_ARP = -134,         /* ARP sender address or MAC not the endpoint's */
	TRELLIS_DROP_LINK_LOCAL = -135,          /* IPv6 link-local/unspecified source outside ND */
	TRELLIS_DROP_UNKNOWN_PEER = -136,        /* Geneve from a node not in trellis_peers */
	TRELLIS_DROP_WRONG_VNI = -137,           /* Geneve VNI differs from the node's */
	TRELLIS_DROP_BAD_GENEVE = -138,          /* version not 0, protocol not Ethernet, bad length */
	TRELLIS_DROP_GENEVE_UNSUPPORTED = -139,  /* OAM packet or critical options we cannot honour */
	TRELLIS_DROP_UNKNOWN_ENDPOINT = -140,    /* decapsulated packet for an address not on this node */
	TRELLIS_DROP_INNER_NOT_IP = -141,        /* decapsulated frame is neither IPv4 nor IPv6 */
	TRELLIS_DROP_FRAG_NEEDED = -142,         /* too big for the tunnel and no ICMP answer possible */
	TRELLIS_DROP_ENCAP_FAILED = -143,        /* bpf_skb_adjust_room/store failed on encap */
	TRELLIS_DROP_DECAP_FAILED = -144,        /* bpf_skb_adjust_room failed on decap */
	TRELLIS_DROP_NO_CONFIG = -145,           /* trellis_config not set (node IP, underlay) */
	TRELLIS_DROP_POLICY_EGRESS = -146,       /* the source pod's egress policy allows no such traffic */
	TRELLIS_DROP_POLICY_INGRESS = -147,      /* the destination pod's ingress policy allows no such traffic */
	TRELLIS_DROP_NO_TUNNEL = -148,           /* routed into the overlay device, but no peer node hosts the address */

	/* Not reasons: the bounds of the range above (inclusive; MIN is the most negative). */
	TRELLIS_DROP_REASON_MIN = TRELLIS_DROP_NO_TUNNEL,
	TRELLIS_DROP_REASON_MAX = TRELLIS_DROP_INVALID_PACKET,
};

/* trellis_metrics key. */
struct trellis_metric_key {
	__u8 direction; /* enum trellis_direction */
	__u8 kind;      /* enum trellis_metric_kind */
	__u8 pad[2];
	__s32 code;     /* enum trellis_forward or enum trellis_drop_reason */
};

/* trellis_metrics value (per CPU). */
struct trellis_metric_value {
	__u64 packets;
	__u64 bytes;
};

/* A trellis_events record: one dropped packet. */
struct trellis_drop_event {
	__u64 timestamp_ns; /* bpf_ktime_get_ns() */
	__s32 reason;       /* enum trellis_drop_reason */
	__u32 ifindex;      /* device the program ran on */
	__u8 direction;     /* enum trellis_direction */
	__u8 family;        /* enum trellis_family, 0 when not IP (or not parsed yet) */
	__u8 proto;         /* IPPROTO_*, 0 when unknown */
	__u8 pad;
	__u16 sport;        /* network order */
	__u16 dport;        /* network order */
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 len;          /* skb length */
	__u32 pad2;
};

enum trellis_config_flags {
	TRELLIS_CONFIG_F_BRIDGE_MODE = 1 << 0, /* pods on a bridge: local traffic is switched, not redirected */
};

/*
 * trellis_config[0]: node-wide settings written by the agent at runtime, read by the programs
 * on every packet, so changing them needs no reload.
 */
struct trellis_config {
	__u32 node_ipv4;        /* outer source of Geneve packets; network order */
	__u32 underlay_ifindex; /* device Geneve packets leave through */
	__u32 vni;              /* Geneve VNI (24 bits), host order */
	__u32 flags;            /* enum trellis_config_flags */
	__u32 router_ipv4;      /* source of ICMP errors sent to pods (their gateway); 0 = node_ipv4 */
	/*
	 * Bumped by the agent after every change of the policy or ipcache maps. A tracked flow
	 * whose entry holds an older value is checked against policy again on its next packet, so
	 * a change that revokes access ends established connections too.
	 */
	__u32 policy_gen;
	__u8 router_ipv6[16];   /* source of ICMPv6 errors sent to pods; all zero = none (drop instead) */
	/*
	 * The overlay device: the node's stack routes remote pod CIDRs into it (its tc egress
	 * encapsulates), and decapsulated replies to flows the stack routed re-enter the stack
	 * through it. 0: none yet (such replies are dropped).
	 */
	__u32 overlay_ifindex;
	__u8 overlay_mac[6];
	__u8 pad[2];
};
