// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Test harness (never attached): runs the real from_underlay and from_pod handlers on a packet
 * whose checksum state is set as a NIC would have left it, and reports the state afterwards.
 * BPF_PROG_TEST_RUN cannot set skb->ip_summed to CHECKSUM_UNNECESSARY; bpf_csum_level(INC)
 * can (NONE -> UNNECESSARY level 0, then level + 1 per call).
 *
 *   in:  cb[0] = number of checksums the "NIC" verified (0 = CHECKSUM_NONE)
 *   out: cb[1] = csum_level afterwards + 1 (0 = not CHECKSUM_UNNECESSARY)
 */
#include "../from_underlay.bpf.c"

/* from_pod's handler under another name: both files define the same static helpers. */
#define handle_from_pod harness_handle_from_pod
#define from_pod harness_from_pod_unused
#undef DIR
#define to_tunnel harness_to_tunnel
#define from_pod_ipv4 harness_from_pod_ipv4
#define from_pod_ipv6 harness_from_pod_ipv6
#define LICENSE harness_license_unused
#include "../from_pod.bpf.c"

static __always_inline void nic_verified(struct __sk_buff *ctx)
{
	__u32 n = ctx->cb[0];

#pragma unroll
	for (int i = 0; i < 4; i++)
		if (i < n)
			bpf_csum_level(ctx, BPF_CSUM_LEVEL_INC);
}

static __always_inline void report_level(struct __sk_buff *ctx)
{
	long level = bpf_csum_level(ctx, BPF_CSUM_LEVEL_QUERY);

	ctx->cb[1] = level < 0 ? 0 : level + 1;
}

SEC("tc")
int harness_from_underlay(struct __sk_buff *ctx)
{
	struct trellis_ct_key flow = {};
	int ret;

	nic_verified(ctx);
	ret = handle_from_underlay(ctx, &flow);
	report_level(ctx);
	return ret < 0 ? TC_ACT_SHOT : ret;
}

SEC("tc")
int harness_from_pod(struct __sk_buff *ctx)
{
	struct trellis_ct_key flow = {};
	int ret;

	nic_verified(ctx);
	ret = harness_handle_from_pod(ctx, &flow);
	report_level(ctx);
	return ret < 0 ? TC_ACT_SHOT : ret;
}
