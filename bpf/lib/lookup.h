/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Look-ups in the endpoint, tunnel and peer maps. */
#pragma once

#include "base.h"
#include "maps.h"

/* The local endpoint that owns an IPv4 address (network order), or NULL. */
static __always_inline const struct trellis_endpoint *endpoint_v4(__be32 addr)
{
	struct trellis_ip_key k = ip_key_v4(addr);

	return bpf_map_lookup_elem(&trellis_endpoints, &k);
}

/* The local endpoint that owns an IPv6 address, or NULL. */
static __always_inline const struct trellis_endpoint *endpoint_v6(const struct in6_addr *addr)
{
	struct trellis_ip_key k = ip_key_v6(addr);

	return bpf_map_lookup_elem(&trellis_endpoints, &k);
}

/* The tunnel (remote node) whose pod CIDR holds this IPv4 address, or NULL. */
static __always_inline const struct trellis_tunnel *tunnel_v4(__be32 addr)
{
	struct trellis_lpm_key k = {
		.prefixlen = TRELLIS_LPM_TAG_BITS + 32,
		.family = TRELLIS_FAMILY_IPV4,
	};

	__builtin_memcpy(k.addr, &addr, 4);
	return bpf_map_lookup_elem(&trellis_tunnels, &k);
}

/* The tunnel (remote node) whose pod CIDR holds this IPv6 address, or NULL. */
static __always_inline const struct trellis_tunnel *tunnel_v6(const struct in6_addr *addr)
{
	struct trellis_lpm_key k = {
		.prefixlen = TRELLIS_LPM_TAG_BITS + 128,
		.family = TRELLIS_FAMILY_IPV6,
	};

	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&trellis_tunnels, &k);
}

/* Whether the address of a flow key (family tag and 16 bytes) is a Service address. */
static __always_inline int is_service(__u8 family, const __u8 *addr)
{
	struct trellis_ip_key k = { .family = family };

	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&trellis_services, &k) != NULL;
}

/* True when Geneve from this node IPv4 (network order) is accepted. */
static __always_inline int peer_known(__be32 node)
{
	return bpf_map_lookup_elem(&trellis_peers, &node) != NULL;
}

/* The node configuration, or NULL when the agent has not written it yet. */
static __always_inline const struct trellis_config *config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&trellis_config, &zero);
}
