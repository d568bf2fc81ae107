/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Kernel headers, libbpf helpers and the small utilities every program uses. */
#pragma once

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "common.h"
#include "compat.h"

#ifndef offsetof
#define offsetof(type, member) __builtin_offsetof(type, member)
#endif

/*
 * linux/icmp.h and linux/if_arp.h include libc headers (through linux/if.h), which do not build
 * for -target bpf: the little of them the datapath needs is declared here.
 */
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED 4
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		__be32 gateway;
		struct {
			__be16 __unused;
			__be16 mtu;
		} frag;
	} un;
};

#define IPV4_DF 0x4000
#define IPV4_MF 0x2000
#define IPV4_FRAG_OFFSET 0x1fff

/* True when both 6-byte MAC addresses are equal. */
static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] &&
	       a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

/*
 * True when both 16-byte addresses (flow keys' address fields) are equal. Byte by byte: the
 * keys are only 2-byte aligned, and the verifier rejects misaligned stack access.
 */
static __always_inline int addr16_equal(const __u8 *a, const __u8 *b)
{
	__u8 diff = 0;

#pragma unroll
	for (int i = 0; i < 16; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

/* Copies a 6-byte MAC address. */
static __always_inline void mac_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, 6);
}

/* Folds a 32-bit one's complement sum into 16 bits (not inverted). */
static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* The header checksum of a 20-byte IPv4 header (its check field must be zero). */
static __always_inline __u16 ipv4_header_csum(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)sizeof(struct iphdr) / 2; i++)
		sum += w[i];
	return ~csum_fold32(sum);
}

/*
 * Incremental checksum update (RFC 1624) when a 16-bit word of the covered data changes from
 * `from` to `to`. Used on the IPv4 header checksum, which leaves the packet's one's complement
 * sum unchanged, so CHECKSUM_COMPLETE skbs need no skb->csum update.
 */
static __always_inline void csum_replace2(__sum16 *check, __be16 from, __be16 to)
{
	__u32 sum = (__u16)~*check + (__u16)~from + (__u16)to;

	*check = ~csum_fold32(sum);
}

/* A family-tagged hash key for an IPv4 address (network order). */
static __always_inline struct trellis_ip_key ip_key_v4(__be32 addr)
{
	struct trellis_ip_key k = { .family = TRELLIS_FAMILY_IPV4 };

	__builtin_memcpy(k.addr, &addr, 4);
	return k;
}

/* A family-tagged hash key for an IPv6 address. */
static __always_inline struct trellis_ip_key ip_key_v6(const struct in6_addr *addr)
{
	struct trellis_ip_key k = { .family = TRELLIS_FAMILY_IPV6 };

	__builtin_memcpy(k.addr, addr, 16);
	return k;
}
