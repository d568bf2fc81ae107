import CTrellisBPF
import TrellisDatapathLayout

/// The shared maps, each with the Swift types its keys and values are read and written as: the
/// C structs of bpf/lib/common.h (or the plain integer types bpf/lib/maps.h declares). Building
/// it checks every key and value size against the object's map definition (`TypedMap`), so a
/// layout changed on one side only (an object built from another header) fails at load, and
/// without root in `DatapathLayoutTests`, which builds it from the unloaded objects.
struct DatapathMaps {
    let endpoints: TypedMap<trellis_ip_key, trellis_endpoint>
    let ipcache: TypedMap<trellis_lpm_key, trellis_ipcache_entry>
    let policy: TypedMap<trellis_policy_key, trellis_policy_value>
    let identities: TypedMap<UInt32, UInt64>
    let tunnels: TypedMap<trellis_lpm_key, trellis_tunnel>
    /// Key: the node's IPv4, network order.
    let peers: TypedMap<UInt32, trellis_peer>
    let services: TypedMap<trellis_ip_key, trellis_service>
    let conntrack: TypedMap<trellis_ct_key, trellis_ct_entry>
    let metrics: TypedMap<trellis_metric_key, trellis_metric_value>
    /// Key: always 0.
    let config: TypedMap<UInt32, trellis_config>
    /// A ring buffer: no keys or values (read it with `DropEventReader`).
    let events: BPFMap

    init(_ o: BPFObject) throws(DatapathError) {
        endpoints = try TypedMap(o.map(.endpoints))
        ipcache = try TypedMap(o.map(.ipcache))
        policy = try TypedMap(o.map(.policy))
        identities = try TypedMap(o.map(.identities))
        tunnels = try TypedMap(o.map(.tunnels))
        peers = try TypedMap(o.map(.peers))
        services = try TypedMap(o.map(.services))
        conntrack = try TypedMap(o.map(.conntrack))
        metrics = try TypedMap(o.map(.metrics))
        config = try TypedMap(o.map(.config))
        events = try o.map(.events)
    }
}

extension BPFObject {
    /// One of the shared maps.
    func map(_ m: DatapathMap) throws(DatapathError) -> BPFMap { try map(named: m.name) }
}
