// TrellisCore: the types that cross a process or language boundary (plugin <-> agent, agent
// <-> trellisctl, Swift <-> bpf/), each defined once. Pure Swift: no Foundation (Glibc only for a
// unix socket address), so the CNI plugin links it without paying for it at start-up.
