import Logging
import TrellisCore
import TrellisNet

/// A pod interface on this node whose datapath the agent programmed: who it is, its addresses,
/// and the endpoint map's value they share (`entry`, whose fields read through:
/// `ep.hostIfindex`, `ep.policyID`).
@dynamicMemberLookup
public struct LocalEndpoint: Sendable, Equatable {
    /// nil for an endpoint adopted from the pinned maps after a restart (the maps do not know it).
    public var containerID: String?
    public var ifname: String?
    public var podNamespace: String?
    public var podName: String?
    /// nil when adopted and the device was already gone.
    public var hostIfname: String?
    public var ips: [IPAddress]
    /// The endpoint map's value for each of its addresses: host veth, MACs, the pod's label
    /// identity and the key of its policy entries.
    public var entry: EndpointEntry

    public init(containerID: String?, ifname: String?, podNamespace: String? = nil, podName: String? = nil,
                hostIfname: String?, ips: [IPAddress], entry: EndpointEntry) {
        self.containerID = containerID
        self.ifname = ifname
        self.podNamespace = podNamespace
        self.podName = podName
        self.hostIfname = hostIfname
        self.ips = ips
        self.entry = entry
    }

    /// The endpoint an ADD asks for, with the identity and policy the agent gave the pod.
    init(_ req: HandshakeRequest.AddRequest, identity: UInt32, policyID: UInt32) {
        self.init(containerID: req.containerID, ifname: req.ifname, podNamespace: req.podNamespace, podName: req.podName,
                  hostIfname: req.hostIfname, ips: req.ips, entry: req.entry(identity: identity, policyID: policyID))
    }

    public subscript<Value>(dynamicMember field: WritableKeyPath<EndpointEntry, Value>) -> Value {
        get { entry[keyPath: field] }
        set { entry[keyPath: field] = newValue }
    }

    var logMetadata: Logger.Metadata {
        var m: Logger.Metadata = ["endpoint.ifindex": "\(entry.hostIfindex)"]
        if let hostIfname { m["endpoint.ifname"] = "\(hostIfname)" }
        if let containerID { m["container.id"] = "\(containerID)" }
        if let podNamespace { m["pod.namespace"] = "\(podNamespace)" }
        if let podName { m["pod.name"] = "\(podName)" }
        return m
    }

    /// "pod default/web-1 (trl0123456789ab)", for messages.
    var label: String {
        let device = hostIfname ?? "ifindex \(entry.hostIfindex)"
        if let podNamespace, let podName { return "pod \(podNamespace)/\(podName) (\(device))" }
        if let containerID { return "container \(containerID) (\(device))" }
        return "endpoint \(device)"
    }
}

/// A handshake request the agent could not carry out; the text goes back to the plugin.
public struct EndpointFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The local endpoints and their datapath state, keyed by host veth ifindex.
///
/// ADD programs an endpoint completely or not at all: programs attached to the host veth, an
/// endpoint entry per IP; should any step fail, everything done for that endpoint is undone
/// and the error returned. DEL removes its entries (and detaches, should the device still
/// exist). Endpoints whose host veth vanished without a DEL are removed by `sweep`, which the
/// agent runs at start and every few seconds.
public struct EndpointRegistry: Sendable {
    public private(set) var endpoints: [Int32: LocalEndpoint] = [:]

    public init() {}

    public var count: Int { endpoints.count }

    /// Which endpoint holds `ip`.
    func owner(of ip: IPAddress) -> Int32? {
        endpoints.first { $0.value.ips.contains(ip) }?.key
    }

    // MARK: ADD

    public mutating func add(_ req: HandshakeRequest.AddRequest, identity: UInt32, policyID: UInt32,
                             programmer: any DatapathProgrammer, links: any LinkInspector,
                             logger: Logger) throws(EndpointFailure) {
        var endpoint = LocalEndpoint(req, identity: identity, policyID: policyID)
        var log = logger
        for (k, v) in endpoint.logMetadata { log[metadataKey: k] = v }
        try Self.checkDevice(req, links: links)

        // The same container interface on another (older) veth: ADD was repeated after the
        // veth was recreated. Its old entries go first.
        if let old = endpoints.values.first(where: {
            $0.containerID == req.containerID && $0.ifname == req.ifname && $0.hostIfindex != req.hostIfindex
        }) {
            try remove(old, reason: "replaced by a new host veth", programmer: programmer, links: links, logger: logger)
        }
        // A record on this very device: a repeated ADD, or a stale record on a reused ifindex.
        let replaced = endpoints[req.hostIfindex]

        var written: [IPAddress] = []
        do {
            log.debug("programming: attach endpoint")
            try programmer.attachEndpoint(hostIfindex: req.hostIfindex)
            for ip in req.ips {
                log.debug("programming: upsert endpoint", metadata: [
                    "endpoint.ip": "\(ip)", "identity": "\(identity)", "policy.id": "\(policyID)"])
                try programmer.upsertEndpoint(ip: ip, endpoint.entry)
                written.append(ip)
            }
            for ip in replaced?.ips ?? [] where !req.ips.contains(ip) && owner(of: ip) == req.hostIfindex {
                log.debug("programming: delete endpoint", metadata: ["endpoint.ip": "\(ip)"])
                try programmer.deleteEndpoint(ip: ip)
            }
        } catch {
            // Nothing may stay programmed for this endpoint.
            let leftovers = Set(written + (replaced?.ips ?? []))
            for ip in leftovers.sorted() {
                log.debug("rollback: delete endpoint", metadata: ["endpoint.ip": "\(ip)"])
                do { try programmer.deleteEndpoint(ip: ip) } catch {
                    log.error("rollback: cannot delete endpoint entry", metadata: ["endpoint.ip": "\(ip)", "error": "\(error)"])
                }
                forget(ip)
            }
            log.debug("rollback: detach endpoint")
            do { try programmer.detachEndpoint(hostIfindex: req.hostIfindex) } catch {
                log.error("rollback: cannot detach endpoint", metadata: ["error": "\(error)"])
            }
            endpoints[req.hostIfindex] = nil
            log.error("endpoint add failed, rolled back", metadata: ["error": "\(error)"])
            throw EndpointFailure("\(endpoint.label): \(error)")
        }
        // IPs a stale endpoint still claimed are this one's now (their entries were overwritten).
        for ip in req.ips { forget(ip) }
        endpoint.ips = req.ips
        endpoints[req.hostIfindex] = endpoint
        log.info(replaced == nil ? "endpoint added" : "endpoint updated",
                 metadata: ["endpoint.ips": .array(req.ips.map { .string("\($0)") })])
    }

    /// The device must be the one the plugin named: an ifindex alone could be anything.
    static func checkDevice(_ req: HandshakeRequest.AddRequest, links: any LinkInspector) throws(EndpointFailure) {
        let label = LocalEndpoint(req, identity: 0, policyID: 0).label
        let device: LinkFacts?
        do { device = try links.link(index: req.hostIfindex) } catch {
            throw EndpointFailure("\(label): cannot look up the host veth: \(error)")
        }
        guard let device else {
            throw EndpointFailure("\(label): host veth \(req.hostIfname) (ifindex \(req.hostIfindex)) does not exist")
        }
        guard device.name == req.hostIfname else {
            throw EndpointFailure("\(label): ifindex \(req.hostIfindex) is \(device.name), not \(req.hostIfname)")
        }
    }

    /// Drops `ip` from whatever record lists it (its entry was overwritten or deleted).
    private mutating func forget(_ ip: IPAddress) {
        for (index, var ep) in endpoints where ep.ips.contains(ip) {
            ep.ips.removeAll { $0 == ip }
            endpoints[index] = ep
        }
    }

    // MARK: DEL

    /// Removes the endpoint of a container interface. An unknown one is fine (DEL is
    /// idempotent, and after a restart the agent may not know it by container ID: then the
    /// host veth's name, or the sweep, finds it).
    public mutating func delete(_ req: HandshakeRequest.DelRequest, programmer: any DatapathProgrammer,
                                links: any LinkInspector, logger: Logger) throws(EndpointFailure) {
        let found = endpoints.values.first { $0.containerID == req.containerID && $0.ifname == req.ifname }
            ?? req.hostIfname.flatMap { name in endpoints.values.first { $0.hostIfname == name } }
        guard let found else {
            logger.debug("del of an endpoint the agent does not know", metadata: [
                "container.id": "\(req.containerID)", "endpoint.ifname": "\(req.hostIfname ?? "?")"])
            return
        }
        try remove(found, reason: "deleted", programmer: programmer, links: links, logger: logger)
    }

    /// Deletes an endpoint's entries, detaches its programs if its device is still there, and
    /// forgets it. On failure the record stays (with what is left) for the next sweep.
    private mutating func remove(_ ep: LocalEndpoint, reason: String, programmer: any DatapathProgrammer,
                                 links: any LinkInspector, logger: Logger) throws(EndpointFailure) {
        var log = logger
        for (k, v) in ep.logMetadata { log[metadataKey: k] = v }
        var left = ep
        for ip in ep.ips where owner(of: ip) == ep.hostIfindex {
            log.debug("programming: delete endpoint", metadata: ["endpoint.ip": "\(ip)"])
            do { try programmer.deleteEndpoint(ip: ip) } catch {
                endpoints[ep.hostIfindex] = left
                throw EndpointFailure("\(ep.label): cannot delete the entry of \(ip): \(error)")
            }
            left.ips.removeAll { $0 == ip }
        }
        // Detach only from our own device: the ifindex may since belong to another one.
        if let device = try? links.link(index: ep.hostIfindex), ep.hostIfname == nil || device.name == ep.hostIfname {
            log.debug("programming: detach endpoint")
            do { try programmer.detachEndpoint(hostIfindex: ep.hostIfindex) } catch {
                left.ips = []
                endpoints[ep.hostIfindex] = left
                throw EndpointFailure("\(ep.label): cannot detach: \(error)")
            }
        }
        endpoints[ep.hostIfindex] = nil
        log.info("endpoint removed: \(reason)")
    }

    // MARK: identity

    /// Rewrites the endpoint entries of the endpoint on `hostIfindex` with a new identity and
    /// policy id (the pod was relabelled, or an adopted endpoint learnt its pod).
    public mutating func setIdentity(_ identity: UInt32, policyID: UInt32, onEndpoint index: Int32,
                                     programmer: any DatapathProgrammer, logger: Logger) throws(EndpointFailure) {
        guard var ep = endpoints[index], ep.identity != identity || ep.policyID != policyID else { return }
        ep.identity = identity
        ep.policyID = policyID
        var log = logger
        for (k, v) in ep.logMetadata { log[metadataKey: k] = v }
        for ip in ep.ips {
            log.debug("programming: upsert endpoint", metadata: [
                "endpoint.ip": "\(ip)", "identity": "\(identity)", "policy.id": "\(policyID)"])
            do { try programmer.upsertEndpoint(ip: ip, ep.entry) } catch {
                throw EndpointFailure("\(ep.label): cannot write the entry of \(ip): \(error)")
            }
        }
        endpoints[index] = ep
        log.info("endpoint identity updated", metadata: ["identity": "\(identity)", "policy.id": "\(policyID)"])
    }

    /// Names an endpoint adopted from the pinned maps after its pod was found by address.
    mutating func name(endpoint index: Int32, namespace: String, pod: String) {
        guard var ep = endpoints[index], ep.podName == nil else { return }
        ep.podNamespace = namespace
        ep.podName = pod
        endpoints[index] = ep
    }

    // MARK: sweep and adoption

    /// Removes endpoints whose host veth is gone (or whose ifindex now names another device).
    /// A device that cannot be looked up is left alone this time.
    @discardableResult
    public mutating func sweep(programmer: any DatapathProgrammer, links: any LinkInspector,
                               logger: Logger) -> [ReconcileFailure] {
        var failures: [ReconcileFailure] = []
        for ep in endpoints.values.sorted(by: { $0.hostIfindex < $1.hostIfindex }) {
            let device: LinkFacts?
            do { device = try links.link(index: ep.hostIfindex) } catch { continue }
            if let device, ep.hostIfname == nil || device.name == ep.hostIfname { continue }
            do {
                try remove(ep, reason: "its host veth is gone", programmer: programmer, links: links, logger: logger)
            } catch {
                failures.append(ReconcileFailure(object: ep.label, error: error.description))
            }
        }
        return failures
    }

    /// Takes over what the pinned endpoint map holds (after an agent restart): one record per
    /// host ifindex, its programs re-attached (a new agent brings new programs) without
    /// touching the entries, then a sweep for the devices that went away meanwhile.
    public mutating func adopt(programmer: any DatapathProgrammer, links: any LinkInspector,
                               logger: Logger) throws -> [ReconcileFailure] {
        let entries = try programmer.programmedEndpoints()
        var byIndex: [Int32: [(IPAddress, EndpointEntry)]] = [:]
        for (ip, entry) in entries { byIndex[entry.hostIfindex, default: []].append((ip, entry)) }
        var failures: [ReconcileFailure] = []
        for (index, items) in byIndex.sorted(by: { $0.key < $1.key }) {
            let sorted = items.sorted { $0.0 < $1.0 }
            let first = sorted[0].1
            let device = (try? links.link(index: index)) ?? nil
            let ep = LocalEndpoint(containerID: nil, ifname: nil, hostIfname: device?.name, ips: sorted.map(\.0), entry: first)
            endpoints[index] = ep
            var log = logger
            for (k, v) in ep.logMetadata { log[metadataKey: k] = v }
            log.info("endpoint adopted from the pinned maps", metadata: ["endpoint.ips": .array(ep.ips.map { .string("\($0)") })])
            guard device != nil else { continue }  // the sweep removes it
            log.debug("programming: attach endpoint (replace programs)")
            do { try programmer.attachEndpoint(hostIfindex: index) } catch {
                failures.append(ReconcileFailure(object: ep.label, error: "cannot re-attach: \(error)"))
            }
        }
        failures += sweep(programmer: programmer, links: links, logger: logger)
        return failures
    }
}
