// libbpf as Debian's libbpf-dev ships it (1.1): no tcx links, tc attach through bpf_tc_*.
#pragma once
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
