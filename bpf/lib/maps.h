/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the datapath, declared once. Each program object includes this file, and all
 * maps are pinned by name under the agent's bpffs directory, so every object (and an agent that
 * restarts) shares the same instances. Layouts are in common.h.
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "common.h"

/* Pod addresses on this node -> host veth, MACs, identity: anti-spoofing and local delivery. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct trellis_ip_key);
	__type(value, struct trellis_endpoint);
	__uint(max_entries, 16384);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} trellis_endpoints SEC(".maps");

/* Address prefixes (pods, nodes, world) -> security identity, for policy. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct trellis_lpm_key);
	__type(value, struct trellis_ipcache_entry);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} trellis_ipcache SEC(".maps");

/* Allow entries of the local pods' NetworkPolicy (struct trellis_policy_key): compiled by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct trellis_policy_key);
	__type(value, struct trellis_policy_value);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} trellis_policy SEC(".maps");

/*
 * Identity number -> 64-bit fingerprint of its label set. The programs never read it: it is the
 * agent's record, pinned with the maps it explains, so that a restarted agent keeps every
 * number for the label set it stands for.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} trellis_identities SEC(".maps");

/* Remote pod CIDRs (IPv4 and IPv6) -> IPv4 of the node that hosts them (Geneve destination). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct trellis_lpm_key);
	__type(value, struct trellis_tunnel);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} trellis_tunnels SEC(".maps");

/* Node IPv4s (network order) whose Geneve packets are accepted on the underlay. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct trellis_peer);
	__uint(max_entries, 4096);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} trellis_peers SEC(".maps");

/* Addresses the node's stack translates (Service ClusterIPs, external and load-balancer IPs). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct trellis_ip_key);
	__type(value, struct trellis_service);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} trellis_services SEC(".maps");

/* Flows seen by the datapath (5-tuple in first-packet direction) -> state, for stateful policy. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct trellis_ct_key);
	__type(value, struct trellis_ct_entry);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} trellis_conntrack SEC(".maps");

/* Per-CPU packet/byte counters by (direction, forward kind or drop reason). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct trellis_metric_key);
	__type(value, struct trellis_metric_value);
	__uint(max_entries, 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} trellis_metrics SEC(".maps");

/* Drop events (struct trellis_drop_event) for the agent's monitor. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} trellis_events SEC(".maps");

/* Node settings written by the agent at runtime (struct trellis_config at index 0). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct trellis_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} trellis_config SEC(".maps");
