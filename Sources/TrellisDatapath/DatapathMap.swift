/// The maps every program object shares (bpf/lib/maps.h), by the name each is declared and
/// pinned under (`<pin directory>/<name>`): the one list of them on the Swift side, for the
/// loader, the tools and the tests. `DatapathLayoutTests` checks it against the maps the built
/// objects declare.
public enum DatapathMap: String, CaseIterable, Sendable {
    /// Pod addresses of this node -> `struct trellis_endpoint`.
    case endpoints = "trellis_endpoints"
    /// Address ranges -> their identities (`struct trellis_ipcache_entry`), LPM.
    case ipcache = "trellis_ipcache"
    /// NetworkPolicy allow entries (`struct trellis_policy_key`), LPM.
    case policy = "trellis_policy"
    /// Identity -> the agent's fingerprint of what it stands for.
    case identities = "trellis_identities"
    /// Remote pod CIDRs -> their node (`struct trellis_tunnel`), LPM.
    case tunnels = "trellis_tunnels"
    /// Nodes whose Geneve traffic is accepted.
    case peers = "trellis_peers"
    /// Addresses the node's stack translates (Services).
    case services = "trellis_services"
    /// Tracked flows (`struct trellis_ct_key` -> `struct trellis_ct_entry`).
    case conntrack = "trellis_conntrack"
    /// Forward and drop counters, per CPU.
    case metrics = "trellis_metrics"
    /// The drop event ring buffer (`struct trellis_drop_event` records).
    case events = "trellis_events"
    /// The node settings, one entry (`struct trellis_config`).
    case config = "trellis_config"

    /// The name in the objects and the pin directory.
    public var name: String { rawValue }
}
