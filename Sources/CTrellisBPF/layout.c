// Compile-time checks of the shared layouts: the BPF programs and Swift read these structs as raw
// bytes (map keys and values, ring buffer records), so their sizes and offsets are part of the
// datapath's ABI with its pinned maps.
#include <stddef.h>
#include "CTrellisBPF.h"

_Static_assert(sizeof(struct trellis_ip_key) == 20, "trellis_ip_key");
_Static_assert(sizeof(struct trellis_lpm_key) == 24, "trellis_lpm_key");
_Static_assert(offsetof(struct trellis_lpm_key, family) == 4, "lpm family follows prefixlen");
_Static_assert(sizeof(struct trellis_endpoint) == 24, "trellis_endpoint");
_Static_assert(sizeof(struct trellis_ipcache_entry) == 8, "trellis_ipcache_entry");
_Static_assert(sizeof(struct trellis_tunnel) == 8, "trellis_tunnel");
_Static_assert(sizeof(struct trellis_peer) == 4, "trellis_peer");
_Static_assert(sizeof(struct trellis_ct_key) == 40, "trellis_ct_key");
_Static_assert(sizeof(struct trellis_ct_entry) == 48, "trellis_ct_entry");
_Static_assert(sizeof(struct trellis_metric_key) == 8, "trellis_metric_key");
_Static_assert(sizeof(struct trellis_metric_value) == 16, "trellis_metric_value");
_Static_assert(sizeof(struct trellis_drop_event) == 64, "trellis_drop_event");
_Static_assert(sizeof(struct trellis_config) == 52, "trellis_config");
_Static_assert(offsetof(struct trellis_config, overlay_ifindex) == 40, "trellis_config overlay");
_Static_assert(sizeof(struct trellis_service) == 4, "trellis_service");
_Static_assert(sizeof(struct trellis_policy_key) == 16, "trellis_policy_key");
_Static_assert(offsetof(struct trellis_policy_key, dport) == 14, "policy dport is the last 16 matchable bits");
_Static_assert(sizeof(struct trellis_policy_value) == 4, "trellis_policy_value");

// Referenced so the target has an object file with a symbol.
int trellis_bpf_layout_version(void) { return 1; }
