import TrellisNet

/// `lab probe FROM TO PORT`: one connection attempt, from a pod or node to a pod or Service.
extension Lab {
    public struct ProbeResult: Sendable {
        public var line: String
        public var ok: Bool
    }

    func findPod(_ ref: String, _ state: LabState) throws(LabError) -> PodRecord {
        let parts = ref.split(separator: "/", maxSplits: 1).map(String.init)
        let (ns, name) = parts.count == 2 ? (parts[0], parts[1]) : ("default", ref)
        guard let pod = state.pod(ns, name) else {
            throw LabError("pod \(ns)/\(name): not in the lab (`trellisctl lab status\(layout.stateFlag)` lists the pods)", exitCode: 2)
        }
        guard pod.phase == .running else { throw LabError("pod \(pod.id): not running yet", exitCode: 2) }
        return pod
    }

    /// `80`, `80/TCP`, `53/udp`, or a port name declared by `destination` (`http`).
    static func parsePort(_ text: String, destination: PodRecord?) throws(LabError) -> (UInt16, PortProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        var proto: PortProtocol = .tcp
        if parts.count == 2 {
            guard let p = PortProtocol(rawValue: parts[1].uppercased()) else {
                throw LabError("\(text): protocol must be TCP or UDP", exitCode: 2)
            }
            proto = p
        }
        if let n = Int(parts[0]), (1...65535).contains(n) { return (UInt16(n), proto) }
        if let destination, let named = destination.ports.first(where: { $0.name == parts[0] && (parts.count == 1 || $0.proto == proto) }) {
            return (UInt16(named.port), named.proto)
        }
        throw LabError("\(text): not a port (1-65535, optionally /TCP or /UDP)\(destination.map { " nor a port name of pod \($0.id)" } ?? "")", exitCode: 2)
    }

    static func destination(_ pod: PodRecord, ipv6: Bool) throws(LabError) -> IPAddress {
        let ips = pod.ips.compactMap { IPAddress($0) }
        guard let ip = ipv6 ? ips.first(where: { $0.family == .v6 }) : ips.first else {
            throw LabError("pod \(pod.id): has no \(ipv6 ? "IPv6 " : "")address", exitCode: 2)
        }
        return ip
    }

    /// Where a probe starts: a pod (`NS/POD`, or `POD` in default) or a node (`node:NAME` or a
    /// lab node's name), as (network namespace, name for the line).
    func findSource(_ ref: String, _ state: LabState) throws(LabError) -> (netns: String, id: String) {
        let nodeName = ref.hasPrefix("node:") ? String(ref.dropFirst(5)) : ref
        if let node = state.node(nodeName) { return (node.netns, "node:\(node.name)") }
        if ref.hasPrefix("node:") { throw LabError("\(ref): not a lab node", exitCode: 2) }
        let pod = try findPod(ref, state)
        return (pod.netns, pod.id)
    }

    public func probe(from: String, to: String, port: String, timeout: Double, ipv6: Bool = false) throws -> ProbeResult {
        try Self.requireRoot()
        let state = try loadForReading()
        let src = try findSource(from, state)
        if to.hasPrefix("svc:") { return try probeService(from: src, to: String(to.dropFirst(4)), port: port, timeout: timeout, state) }
        let dst = try findPod(to, state)
        let (number, proto) = try Self.parsePort(port, destination: dst)
        let address = SocketAddress(ip: try Self.destination(dst, ipv6: ipv6), port: number)
        let outcome = try Prober.run([ProbeRequest(sourceNetns: src.netns, address: address, proto: proto, expected: dst.id)],
                                     timeout: timeout)[0]
        return ProbeResult(line: "\(src.id) -> \(dst.id) \(address.text)/\(proto.rawValue): \(outcome.text(timeout: timeout))",
                           ok: outcome.ok)
    }

    /// A probe of a Service's cluster IP (`svc:NS/NAME`, port by number or by the Service port's
    /// name): connected when one of its backends answers.
    private func probeService(from src: (netns: String, id: String), to ref: String, port: String, timeout: Double,
                              _ state: LabState) throws -> ProbeResult {
        let parts = ref.split(separator: "/", maxSplits: 1).map(String.init)
        let (ns, name) = parts.count == 2 ? (parts[0], parts[1]) : ("default", ref)
        guard let service = state.services?.first(where: { $0.namespace == ns && $0.name == name }) else {
            throw LabError("service \(ns)/\(name): not in the lab (`trellisctl lab status\(layout.stateFlag)` lists the services)", exitCode: 2)
        }
        let pieces = port.split(separator: "/", maxSplits: 1).map(String.init)
        let wantProto = pieces.count == 2 ? PortProtocol(rawValue: pieces[1].uppercased()) : nil
        guard let sp = service.ports.first(where: {
            ($0.name == pieces[0] || String($0.port) == pieces[0]) && (wantProto == nil || $0.proto == wantProto)
        }) else {
            throw LabError("\(port): not a port of service \(service.id) (\(service.ports.map(\.label).joined(separator: ", ")))", exitCode: 2)
        }
        let backends = LabServices.backends(service, sp, pods: state.pods).map(\.pod)
        let address = SocketAddress(ip: IPAddress(service.clusterIP)!, port: UInt16(sp.port))
        let outcome = try Prober.run([ProbeRequest(sourceNetns: src.netns, address: address, proto: sp.proto,
                                                   expected: backends.first ?? "(no backend)", alsoExpected: Array(backends.dropFirst()))],
                                     timeout: timeout)[0]
        return ProbeResult(line: "\(src.id) -> svc:\(service.id) \(address.text)/\(sp.proto.rawValue): \(outcome.text(timeout: timeout))",
                           ok: outcome.ok)
    }
}
