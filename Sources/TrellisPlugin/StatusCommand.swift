import TrellisCNI
import TrellisCore
import TrellisJSON
import TrellisIPAM
import TrellisNet
import TrellisNetlink

/// STATUS (CNI 1.1): succeeds when an ADD could be served now. 50 when it could not: the IPAM
/// state is unusable, a range is full, or the bridge/gateway device name is taken by another
/// kind of link.
func cmdStatus(conf: NetConf) throws(CNIError) {
    let store: IPAMStore
    do { store = try IPAMStore(directory: conf.dataDir + "/" + conf.name) }
    catch { throw .pluginNotAvailable("IPAM state unusable: \(error)") }
    let allocations: [Allocation]
    do { allocations = try store.all() }
    catch { throw .pluginNotAvailable("IPAM state unusable: \(error)") }

    for range in conf.ranges {
        let used = allocations.reduce(0) { n, a in n + a.addresses.filter { range.subnet.contains($0.address) }.count }
        if let capacity = range.capacity(excluding: conf.reserved), used >= capacity {
            throw .pluginNotAvailable("no free address in \(range.subnet): \(used) of \(capacity) in use")
        }
    }

    if let socket = conf.agentSocket {
        let reply: HandshakeReply
        do { reply = try AgentClient(socketPath: socket, timeoutSeconds: 3).call(.status) }
        catch { throw .pluginNotAvailable(error.description) }
        guard reply == .status(ready: true) else {
            throw .pluginNotAvailable("trellis-agent at \(socket) is not ready")
        }
    }

    let device = conf.mode == .bridge ? (conf.bridgeName, "bridge") : (conf.hostDevice, "veth")
    do {
        if let link = try Netlink().link(named: device.0), link.kind != device.1 {
            throw CNIError.pluginNotAvailable("\(device.0) exists and is a \(link.kind ?? "plain device"), not a \(device.1)")
        }
    } catch let e as CNIError {
        throw e
    } catch {
        throw .pluginNotAvailable("netlink unusable: \(error)")
    }
}

extension IPRange {
    /// How many addresses the range can hand out, or nil when it is too large to ever fill
    /// (IPv6 ranges: counting them is pointless).
    func capacity(excluding reserved: [IPNetwork]) -> Int? {
        guard case .v4(let start) = rangeStart, case .v4(let end) = rangeEnd, end >= start else { return nil }
        var n = Int(end - start) + 1
        let inRange = { (a: IPAddress) in a >= rangeStart && a <= rangeEnd }
        var excluded = Set<IPAddress>()
        for a in [subnet.first, subnet.last, gateway] where inRange(a) { excluded.insert(a) }
        for r in reserved where r.family == .v4 {
            guard case .v4(let f) = r.first, case .v4(let l) = r.last else { continue }
            let lo = max(f, start), hi = min(l, end)
            if lo <= hi, hi - lo < 65536 {
                for v in lo...hi { excluded.insert(.v4(v)) }
            }
        }
        n -= excluded.count
        return max(n, 0)
    }
}
