/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet/byte counters in trellis_metrics. */
#pragma once

#include "base.h"
#include "maps.h"

/* Adds one packet of `len` bytes to the counter (direction, kind, code) of this CPU. */
static __always_inline void metrics_count(__u8 direction, __u8 kind, __s32 code, __u32 len)
{
	struct trellis_metric_key key = { .direction = direction, .kind = kind, .code = code };
	struct trellis_metric_value *v;

	v = bpf_map_lookup_elem(&trellis_metrics, &key);
	if (!v) {
		struct trellis_metric_value first = { .packets = 1, .bytes = len };

		/* Another CPU may create the entry first: then count into ours. */
		if (bpf_map_update_elem(&trellis_metrics, &key, &first, BPF_NOEXIST) == 0)
			return;
		v = bpf_map_lookup_elem(&trellis_metrics, &key);
		if (!v)
			return;
	}
	/* Per-CPU value: no other CPU writes it, plain increments are enough. */
	v->packets += 1;
	v->bytes += len;
}

/* Counts a forwarded packet by kind (enum trellis_forward). */
static __always_inline void count_forward(struct __sk_buff *ctx, __u8 direction, __s32 kind)
{
	metrics_count(direction, TRELLIS_METRIC_FORWARD, kind, ctx->len);
}
