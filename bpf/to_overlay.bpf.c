// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * to_overlay: tc egress of the node's overlay device (the agent's `trellis_ovl`). The node's
 * stack routes every remote pod CIDR into that device, so this sees what the stack itself sends
 * to pods on other nodes: its own traffic (host-network clients, the API server calling a
 * webhook) and what it forwards after a translation (kube-proxy's DNAT of a pod's Service
 * connection to a backend on another node, a NodePort). Pods' direct traffic never comes here:
 * from_pod encapsulates it.
 *
 *   1. NetworkPolicy (policy.h): the egress of a pod of this node that sent the packet (a
 *      Service connection, checked against the backend chosen); the flow is tracked as routed
 *      by the stack, so its replies come back through the stack (from_underlay);
 *   2. Geneve to the node that hosts the destination.
 */
#include "lib/base.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/drop.h"
#include "lib/lookup.h"
#include "lib/flow.h"
#include "lib/conntrack.h"
#include "lib/policy.h"
#include "lib/geneve.h"
#include "lib/service.h"

#define DIR TRELLIS_DIR_TO_OVERLAY

/* Returns a TC_ACT_* verdict, or a (negative) drop reason for the exit to report. */
static __always_inline int handle_to_overlay(struct __sk_buff *ctx, struct trellis_ct_key *flow)
{
	const struct trellis_config *cfg = config_get();
	const struct trellis_tunnel *tun;
	struct l3_info l3 = {};
	__u8 tcp_flags = 0;
	__u32 ct_flags, mtu = 0;
	int err;

	if (!cfg || !cfg->node_ipv4 || !cfg->underlay_ifindex)
		return TRELLIS_DROP_NO_CONFIG;
	err = flow_parse_l3(ctx, flow, &l3);
	if (err == FLOW_NOT_IP)
		return TRELLIS_DROP_UNSUPPORTED_L3; /* nothing but IP is routed here (the device does no ARP) */
	if (err)
		return err;
	if (flow->family == TRELLIS_FAMILY_IPV4) {
		__be32 daddr;

		__builtin_memcpy(&daddr, flow->daddr, 4);
		tun = tunnel_v4(daddr);
	} else {
		tun = tunnel_v6((const struct in6_addr *)flow->daddr);
	}
	/* A stale route (its node gone) or our own CIDR: nobody to send it to. */
	if (!tun || tun->node_ipv4 == cfg->node_ipv4)
		return TRELLIS_DROP_NO_TUNNEL;

	if (!l3.later_fragment) {
		err = flow_load_ports(ctx, l3.l4_off, flow, &tcp_flags);
		if (err)
			return err;
	}
	err = policy_gate(ctx, cfg, flow, tcp_flags, ctx->len, l3.l4_off, l3.later_fragment, TRELLIS_CT_F_VIA_STACK,
			  &ct_flags);
	if (err)
		return err;
	/* Checked: the underlay device must not check the encapsulated packet again. */
	service_mark_clear(ctx);

	/*
	 * The device's MTU is the pod MTU, so the stack already fragmented or answered "too big"
	 * for anything larger (GSO packets are checked per segment); this only guards a device
	 * whose MTU someone raised.
	 */
	if (bpf_check_mtu(ctx, cfg->underlay_ifindex, &mtu, TRELLIS_GENEVE_OVERHEAD, 0) != BPF_MTU_CHK_RET_SUCCESS)
		return TRELLIS_DROP_FRAG_NEEDED;
	return geneve_encap(ctx, cfg, tun->node_ipv4, l3.tos, DIR);
}

SEC("tc")
int to_overlay(struct __sk_buff *ctx)
{
	struct trellis_ct_key flow = {};
	int ret = handle_to_overlay(ctx, &flow);

	if (is_drop(ret))
		return send_drop(ctx, ret, DIR, &flow);
	return ret;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
