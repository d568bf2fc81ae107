import CLibbpf
import CTrellisBPF
import TrellisDatapathLayout
import TrellisCore
import TrellisNet
import TrellisNetlink
import TrellisPolicy
#if canImport(Glibc)
import Glibc
#endif

/// The node's eBPF datapath, as the agent drives it: loads the program objects, shares (and
/// pins) their maps, attaches programs to devices and reads and writes the maps.
///
/// Programs (one object file per attach point, `bpf/*.bpf.c` built by `hack/build-bpf.sh`):
///   - `from_pod` (from_pod.bpf.o): tc ingress of every pod's host veth, both modes;
///   - `to_pod` (to_pod.bpf.o): tc egress of every pod's host veth, both modes (ingress policy of
///     what the kernel delivers);
///   - `from_underlay` (from_underlay.bpf.o): tc ingress of the underlay device;
///   - `to_underlay` (to_underlay.bpf.o): tc egress of the underlay device (the egress policy of
///     pods' Service traffic leaving the node, after kube-proxy translated it);
///   - `to_overlay` (to_overlay.bpf.o): tc egress of the overlay device, into which the node's
///     stack routes the other nodes' pod CIDRs (its own traffic, kube-proxy's DNAT to remote
///     backends).
///
/// **Adoption after a restart.** With a pin directory, every map is pinned there by name; a new
/// `Datapath` (a restarted or upgraded agent) reuses the pinned maps, so endpoints, tunnels,
/// peers, config, conntrack and counters survive, and programs already attached keep forwarding
/// with them meanwhile. The agent then re-attaches (`attachEndpoint`, `attachUnderlay`, `attachOverlay`), which
/// replaces the old programs atomically. A pinned map whose layout no longer matches the new
/// objects (type, key/value size, capacity, flags) is unpinned and created anew; `replacedMaps`
/// lists them, and the agent must re-write their content.
///
/// **Namespaces.** Map operations work from any thread. Attaching and detaching talk rtnetlink
/// in the calling thread's network namespace: the agent runs in the node's namespace; otherwise
/// pass `namespace`. `testRun` resolves device indexes in the calling thread's namespace too.
///
/// Thread safety: after `load` nothing in a `Datapath` changes; each method is one or a few
/// bpf(2)/netlink calls on file descriptors it owns, so it may be shared between threads.
public final class Datapath: @unchecked Sendable {
    /// Program object files, loaded in this order; the first one creates (or adopts) the maps.
    public static let objectFiles = ["from_pod.bpf.o", "to_pod.bpf.o", "from_underlay.bpf.o", "to_underlay.bpf.o",
                                     "to_overlay.bpf.o"]
    /// The maps every object shares (bpf/lib/maps.h).
    public static let mapNames = Set(DatapathMap.allCases.map(\.name))

    let objects: [BPFObject]
    public let pinDirectory: String?
    /// Maps that were pinned with an incompatible layout and have been replaced by empty ones.
    public let replacedMaps: [String]

    let maps: DatapathMaps
    /// The drop event ring buffer (read it with `DropEventReader`).
    public var eventsMap: BPFMap { maps.events }

    /// Loads the datapath.
    ///
    /// - objectDirectory: where the `objectFiles` are.
    /// - pinDirectory: a directory on a bpffs (the bpffs mount itself or a folder inside one;
    ///   created if missing) where the maps are pinned by name and adopted from on the next
    ///   load. nil: nothing is pinned (tests with BPF_PROG_TEST_RUN); the maps live as long as
    ///   this object or an attached program.
    public static func load(objectDirectory: String, pinDirectory: String?) throws(DatapathError) -> Datapath {
        try Datapath(objectDirectory: objectDirectory, pinDirectory: pinDirectory)
    }

    private init(objectDirectory: String, pinDirectory: String?) throws(DatapathError) {
        var replaced: [String] = []
        if let pinDirectory {
            try Self.preparePinDirectory(pinDirectory)
        }
        var objects: [BPFObject] = []
        for file in Self.objectFiles {
            let path = objectDirectory + "/" + file
            guard access(path, R_OK) == 0 else {
                throw DatapathError("open BPF object \(path)", errno: errno,
                                    detail: "build the objects with hack/build-bpf.sh")
            }
            if let first = objects.first {
                let obj = try BPFObject(path: path, pinRoot: nil)
                try obj.shareMaps(with: first, named: Self.mapNames)
                try obj.load()
                objects.append(obj)
            } else {
                let obj = try BPFObject(path: path, pinRoot: pinDirectory)
                if let pinDirectory {
                    replaced = try Self.unpinIncompatible(obj, pinDirectory: pinDirectory)
                }
                try obj.load()
                objects.append(obj)
            }
        }
        self.objects = objects
        self.pinDirectory = pinDirectory
        self.replacedMaps = replaced
        maps = try DatapathMaps(objects[0])
    }

    /// The loaded program of that name (`from_pod`, `to_pod`, `from_underlay`, `to_underlay`,
    /// `to_overlay`).
    public func program(_ name: String) throws(DatapathError) -> BPFProgram {
        for o in objects where o.programNames.contains(name) {
            return try o.program(named: name)
        }
        throw DatapathError("find program \(name)", code: ENOENT, message: "not in \(Self.objectFiles)")
    }

    /// Loads another object (a tool or test harness) whose maps named like the datapath's
    /// share the datapath's instances (nothing of it is pinned).
    public func loadSharingMaps(objectPath: String) throws(DatapathError) -> BPFObject {
        let obj = try BPFObject(path: objectPath, pinRoot: nil)
        try obj.shareMaps(with: objects[0], named: Self.mapNames)
        try obj.load()
        return obj
    }

    // MARK: config

    /// Writes the node settings; programs use them from their next packet on. The policy
    /// generation stays what it is, and so does the overlay device unless `c` names one.
    public func setNodeConfig(_ c: NodeConfig) throws(DatapathError) {
        guard c.nodeIPv4.family == .v4 else {
            throw DatapathError("set node config", code: EINVAL, message: "node IP \(c.nodeIPv4) is not IPv4")
        }
        var raw = trellis_config(c)
        if let current = try maps.config.lookup(0) {
            raw.policy_gen = current.policy_gen
            if c.overlayIfindex == 0 {
                raw.overlay_ifindex = current.overlay_ifindex
                raw.overlay_mac = current.overlay_mac
            }
        }
        try maps.config.update(0, raw)
    }

    /// Records the overlay device in the node settings (the rest stays as it is).
    public func setOverlay(ifindex: Int32, mac: MACAddress) throws(DatapathError) {
        var raw = try maps.config.lookup(0) ?? zeroed(trellis_config.self)
        raw.overlay_ifindex = UInt32(bitPattern: ifindex)
        store(mac.bytes, into: &raw.overlay_mac)
        try maps.config.update(0, raw)
    }

    /// The policy generation (`trellis_config.policy_gen`): tracked flows allowed under another
    /// one are checked against policy again on their next packet.
    public func policyGeneration() throws(DatapathError) -> UInt32 {
        try maps.config.lookup(0)?.policy_gen ?? 0
    }

    /// Starts a new policy generation; call it after a change of the policy or ipcache maps has
    /// been written completely. Returns the new value.
    @discardableResult
    public func bumpPolicyGeneration() throws(DatapathError) -> UInt32 {
        // The agent is the only writer of trellis_config, one call at a time.
        var raw = try maps.config.lookup(0) ?? zeroed(trellis_config.self)
        raw.policy_gen &+= 1
        try maps.config.update(0, raw)
        return raw.policy_gen
    }

    /// The node settings; nil while none were written (all zero).
    public func nodeConfig() throws(DatapathError) -> NodeConfig? {
        guard let raw = try maps.config.lookup(0), raw.node_ipv4 != 0 || raw.underlay_ifindex != 0 else { return nil }
        return raw.nodeConfig
    }

    // MARK: attachment

    /// Attaches `from_pod` to tc ingress of a pod's host veth and `to_pod` to its egress, in
    /// both modes (in ebpf mode `to_pod` sees only what the kernel delivers: the node's own
    /// traffic and the world's). Replaces Trellis programs already attached, atomically. Netlink
    /// runs in `namespace`, or the calling thread's.
    public func attachEndpoint(hostIfindex: Int32, namespace: NetworkNamespace? = nil) throws(DatapathError) {
        let fromPod = try program("from_pod")
        let toPod = try program("to_pod")
        try inNamespace(namespace) { () throws(DatapathError) in
            // Egress first: ingress is what lets the pod's traffic out, and its replies must
            // find the ingress policy of the pod already in place.
            try TCHook.attach(toPod, ifindex: hostIfindex, side: .egress)
            try TCHook.attach(fromPod, ifindex: hostIfindex, side: .ingress)
        }
    }

    /// Removes the Trellis programs from a host veth (both sides). A device that is already gone
    /// is fine. The clsact qdisc stays (see `TCHook.attach`).
    public func detachEndpoint(hostIfindex: Int32, namespace: NetworkNamespace? = nil) throws(DatapathError) {
        try inNamespace(namespace) { () throws(DatapathError) in
            try TCHook.detach(ifindex: hostIfindex, side: .ingress)
            try TCHook.detach(ifindex: hostIfindex, side: .egress)
        }
    }

    /// Attaches `from_underlay` to tc ingress of the underlay device and `to_underlay` to its
    /// egress (replacing previous ones).
    public func attachUnderlay(ifindex: Int32, namespace: NetworkNamespace? = nil) throws(DatapathError) {
        let fromUnderlay = try program("from_underlay")
        let toUnderlay = try program("to_underlay")
        try inNamespace(namespace) { () throws(DatapathError) in
            try TCHook.attach(toUnderlay, ifindex: ifindex, side: .egress)
            try TCHook.attach(fromUnderlay, ifindex: ifindex, side: .ingress)
        }
    }

    /// Removes `from_underlay` and `to_underlay` from the underlay device.
    public func detachUnderlay(ifindex: Int32, namespace: NetworkNamespace? = nil) throws(DatapathError) {
        try inNamespace(namespace) { () throws(DatapathError) in
            try TCHook.detach(ifindex: ifindex, side: .ingress)
            try TCHook.detach(ifindex: ifindex, side: .egress)
        }
    }

    /// Attaches `to_overlay` to tc egress of the overlay device (replacing a previous one).
    /// Set `NodeConfig.overlayIfindex` too, so that replies find their way back.
    public func attachOverlay(ifindex: Int32, namespace: NetworkNamespace? = nil) throws(DatapathError) {
        let prog = try program("to_overlay")
        try inNamespace(namespace) { () throws(DatapathError) in
            try TCHook.attach(prog, ifindex: ifindex, side: .egress)
        }
    }

    private func inNamespace(_ ns: NetworkNamespace?, _ body: () throws(DatapathError) -> Void) throws(DatapathError) {
        guard let ns else { return try body() }
        do {
            try ns.run { () throws -> Void in try body() }
        } catch let e as DatapathError {
            throw e
        } catch {
            throw DatapathError("enter network namespace \(ns.path)", code: 0, message: "\(error)")
        }
    }

    // MARK: endpoints

    /// Adds or replaces a pod address of this node.
    public func upsertEndpoint(_ ip: IPAddress, _ e: EndpointEntry) throws(DatapathError) {
        try maps.endpoints.update(trellis_ip_key(ip), trellis_endpoint(e))
    }

    /// Removes a pod address; false when it was not there.
    @discardableResult
    public func deleteEndpoint(_ ip: IPAddress) throws(DatapathError) -> Bool {
        try maps.endpoints.delete(trellis_ip_key(ip))
    }

    public func endpoint(_ ip: IPAddress) throws(DatapathError) -> EndpointEntry? {
        try maps.endpoints.lookup(trellis_ip_key(ip))?.entry
    }

    public func endpoints() throws(DatapathError) -> [(IPAddress, EndpointEntry)] {
        try maps.endpoints.entries().compactMap { k, v in k.ipAddress.map { ($0, v.entry) } }
    }

    // MARK: tunnels

    /// Routes a remote pod CIDR (IPv4 or IPv6) through Geneve to the node at `nodeIP` (IPv4).
    public func upsertTunnel(_ podCIDR: IPNetwork, nodeIP: IPAddress) throws(DatapathError) {
        guard let node = networkOrderV4(nodeIP) else {
            throw DatapathError("update \(DatapathMap.tunnels.name)", code: EINVAL, message: "node IP \(nodeIP) is not IPv4")
        }
        var v = zeroed(trellis_tunnel.self)
        v.node_ipv4 = node
        try maps.tunnels.update(trellis_lpm_key(podCIDR), v)
    }

    @discardableResult
    public func deleteTunnel(_ podCIDR: IPNetwork) throws(DatapathError) -> Bool {
        try maps.tunnels.delete(trellis_lpm_key(podCIDR))
    }

    /// Pod CIDR -> node IPv4.
    public func tunnels() throws(DatapathError) -> [(IPNetwork, IPAddress)] {
        try maps.tunnels.entries().compactMap { k, v in k.ipNetwork.map { ($0, ipv4(networkOrder: v.node_ipv4)) } }
    }

    // MARK: peers

    /// Accepts Geneve from this node IPv4.
    public func upsertPeer(_ nodeIP: IPAddress) throws(DatapathError) {
        guard let node = networkOrderV4(nodeIP) else {
            throw DatapathError("update \(DatapathMap.peers.name)", code: EINVAL, message: "peer \(nodeIP) is not IPv4")
        }
        try maps.peers.update(node, zeroed(trellis_peer.self))
    }

    @discardableResult
    public func deletePeer(_ nodeIP: IPAddress) throws(DatapathError) -> Bool {
        guard let node = networkOrderV4(nodeIP) else { return false }
        return try maps.peers.delete(node)
    }

    public func peers() throws(DatapathError) -> [IPAddress] {
        try maps.peers.keys().map { ipv4(networkOrder: $0) }
    }

    // MARK: services

    /// Marks an address as one the node's stack translates (a Service's ClusterIP, external or
    /// load-balancer IP): pods' traffic to it is handed to the stack, its egress policy checked
    /// after the translation.
    public func upsertService(_ ip: IPAddress) throws(DatapathError) {
        try maps.services.update(trellis_ip_key(ip), zeroed(trellis_service.self))
    }

    @discardableResult
    public func deleteService(_ ip: IPAddress) throws(DatapathError) -> Bool {
        try maps.services.delete(trellis_ip_key(ip))
    }

    public func services() throws(DatapathError) -> [IPAddress] {
        try maps.services.keys().compactMap(\.ipAddress)
    }

    /// The skb mark `from_pod` puts on a Service packet of the pod with that policy id (for
    /// tests that craft what the stack hands `to_underlay`).
    public static func serviceMark(policyID: UInt32) -> UInt32 { trellis_mark_service(policyID) }

    // MARK: ipcache

    /// Gives every address of `prefix` its identities (longest prefix wins).
    public func upsertIPCache(_ prefix: IPNetwork, _ entry: IPCacheEntry) throws(DatapathError) {
        try maps.ipcache.update(trellis_lpm_key(prefix), trellis_ipcache_entry(entry))
    }

    @discardableResult
    public func deleteIPCache(_ prefix: IPNetwork) throws(DatapathError) -> Bool {
        try maps.ipcache.delete(trellis_lpm_key(prefix))
    }

    public func ipcache() throws(DatapathError) -> [(IPNetwork, IPCacheEntry)] {
        try maps.ipcache.entries().compactMap { k, v in k.ipNetwork.map { ($0, v.entry) } }
    }

    // MARK: policy

    /// Adds an allow entry (`trellis_policy_key(_:)` writes the key).
    public func upsertPolicy(_ key: PolicyMapKey) throws(DatapathError) {
        try maps.policy.update(trellis_policy_key(key), zeroed(trellis_policy_value.self))
    }

    @discardableResult
    public func deletePolicy(_ key: PolicyMapKey) throws(DatapathError) -> Bool {
        try maps.policy.delete(trellis_policy_key(key))
    }

    /// Every allow entry (entries this build cannot read are left out).
    public func policyEntries() throws(DatapathError) -> [PolicyMapKey] {
        try maps.policy.keys().compactMap(\.policyMapKey)
    }

    /// Records what an identity number stands for (`IdentityFingerprint`); the agent's record.
    public func upsertIdentity(_ id: Identity, fingerprint: UInt64) throws(DatapathError) {
        try maps.identities.update(id, fingerprint)
    }

    @discardableResult
    public func deleteIdentity(_ id: Identity) throws(DatapathError) -> Bool {
        try maps.identities.delete(id)
    }

    public func identities() throws(DatapathError) -> [Identity: UInt64] {
        Dictionary(try maps.identities.entries(), uniquingKeysWith: { a, _ in a })
    }

    // MARK: observation

    /// Every counter, summed over CPUs.
    public func metrics() throws(DatapathError) -> [MetricKey: PacketCount] {
        var out: [MetricKey: PacketCount] = [:]
        for key in try maps.metrics.keys() {
            guard let d = Direction(rawValue: key.direction),
                  let kind = MetricKey.Kind(rawValue: key.kind),
                  let perCPU = try maps.metrics.lookupPerCPU(key) else { continue }
            let sum = perCPU.reduce(PacketCount(packets: 0, bytes: 0)) {
                PacketCount(packets: $0.packets &+ $1.packets, bytes: $0.bytes &+ $1.bytes)
            }
            out[MetricKey(direction: d, kind: kind, code: key.code)] = sum
        }
        return out
    }

    /// Tracked flows.
    public func conntrack() throws(DatapathError) -> [ConntrackEntry] {
        try maps.conntrack.entries().compactMap { k, v in k.conntrackEntry(v) }
    }

    // MARK: pin directory

    private static let bpffsMagic: UInt = 0xcafe_4a11

    /// Creates the directory when missing and checks it is on a bpffs.
    static func preparePinDirectory(_ dir: String) throws(DatapathError) {
        var path = ""
        for part in dir.split(separator: "/") {
            path += "/" + part
            if mkdir(path, 0o700) != 0, errno != EEXIST {
                throw DatapathError("create pin directory \(path)", errno: errno)
            }
        }
        let type = trellis_fs_type(dir)
        guard type >= 0 else { throw DatapathError("stat pin directory \(dir)", errno: Int32(-type)) }
        guard UInt(type) == bpffsMagic else {
            throw DatapathError("use pin directory \(dir)", code: EINVAL,
                                message: "not on a bpffs (mount -t bpf bpf DIR)")
        }
    }

    /// Unpins maps whose pinned layout differs from the object's (a datapath upgrade), so that
    /// libbpf creates them anew instead of failing. Returns their names.
    static func unpinIncompatible(_ obj: BPFObject, pinDirectory: String) throws(DatapathError) -> [String] {
        var replaced: [String] = []
        for raw in obj.userMaps {
            let map = BPFMap(raw: raw)
            let pin = pinDirectory + "/" + map.name
            let fd = bpf_obj_get(pin)
            if fd < 0 { continue }   // not pinned yet
            defer { close(fd) }
            var info = bpf_map_info()
            var len = UInt32(MemoryLayout<bpf_map_info>.size)
            try LibBPF.call("read pinned map \(pin)") { bpf_obj_get_info_by_fd(fd, &info, &len) }
            let compatible = info.type == map.type.rawValue && Int(info.key_size) == map.keySize &&
                Int(info.value_size) == map.valueSize && info.max_entries == map.maxEntries &&
                info.map_flags == map.flags
            if !compatible {
                guard unlink(pin) == 0 else { throw DatapathError("unpin incompatible map \(pin)", errno: errno) }
                replaced.append(map.name)
            }
        }
        return replaced
    }
}
