import Foundation
import TrellisAgent
import TrellisJSON
import TrellisNetlink
import TrellisPolicy

/// `lab apply` and `lab delete`: kubectl-like, on the lab's own store (its state file and the
/// manifests the agents read).
///
/// apply is an upsert. A new Namespace, Pod, NetworkPolicy or Service is created; an existing one
/// is updated in place: a Namespace's or Pod's labels (the pod keeps its network namespace, its
/// IPs and its server), a policy replaced whole, a Service's selector and ports. As the API
/// server does, a Pod's other fields and a Service's cluster IP are immutable: changing
/// `spec.nodeName`, the containers or `spec.clusterIP` is refused (delete it first).
/// Both commands then wait until every agent has programmed the change (`--wait` seconds), so
/// that a probe right after sees the new verdicts.
extension Lab {
    public func apply(file: String, wait: Double = 10) throws {
        try Self.requireRoot()
        let set = try readManifests(file)
        let (lock, loaded) = try lockAndLoad()
        defer { Sys.unlock(lock) }
        var state = loaded
        try refuseInKubernetesMode(state, "objects")
        var errors: [String] = []
        for pod in set.pods {
            guard let node = state.node(pod.nodeName) else {
                errors.append("pod \(pod.id): spec.nodeName \"\(pod.nodeName)\" is not a lab node")
                continue
            }
            if let existing = state.pod(pod.namespace, pod.name) {
                if existing.node != node.name {
                    errors.append("pod \(pod.id): spec.nodeName is immutable (it runs on \(existing.node)); delete the pod to move it")
                } else if existing.containers.map(\.ports) != pod.containers.map(\.ports)
                            || existing.containers.map(\.name) != pod.containers.map(\.name) {
                    errors.append("pod \(pod.id): spec.containers may not change (only labels can be updated); delete the pod to change its ports")
                }
            }
        }
        var services = state.services ?? []
        var taken = Set(services.map(\.clusterIP))
        var clusterIPs: [String: String] = [:]   // service id -> its address, new ones allocated
        // Addresses asked for first, so that none is handed out to a service that asks for none.
        let ordered = set.services.filter { $0.clusterIP != nil } + set.services.filter { $0.clusterIP == nil }
        for spec in ordered {
            if let existing = services.first(where: { $0.id == spec.id }) {
                if let ip = spec.clusterIP, ip != existing.clusterIP {
                    errors.append("service \(spec.id): spec.clusterIP is immutable (it has \(existing.clusterIP)); delete the service to change it")
                }
                clusterIPs[spec.id] = existing.clusterIP
            } else if let ip = spec.clusterIP {
                if let owner = services.first(where: { $0.clusterIP == ip }) {
                    errors.append("service \(spec.id): spec.clusterIP \(ip) is already allocated to service \(owner.id)")
                } else if !taken.insert(ip).inserted {
                    errors.append("service \(spec.id): spec.clusterIP \(ip) is asked for twice")
                }
                clusterIPs[spec.id] = ip
            } else if let ip = LabServices.allocate(taken: taken) {
                taken.insert(ip)
                clusterIPs[spec.id] = ip
            } else {
                errors.append("service \(spec.id): no cluster IP left in \(LabServices.cidr)")
            }
        }
        if !errors.isEmpty { throw LabError(errors.joined(separator: "\n")) }
        Interrupts.install()

        var changed = false
        for ns in set.namespaces {
            if let i = state.namespaces.firstIndex(where: { $0.name == ns.name }) {
                if state.namespaces[i].labels == ns.labels {
                    say("namespace/\(ns.name) unchanged")
                } else {
                    state.namespaces[i].labels = ns.labels
                    say("namespace/\(ns.name) configured")
                    changed = true
                }
            } else {
                state.namespaces.append(NamespaceRecord(name: ns.name, labels: ns.labels))
                say("namespace/\(ns.name) created")
                changed = true
            }
        }
        let namespacesNeeded = set.pods.map(\.namespace) + set.policies.map(\.namespace) + set.services.map(\.namespace)
        for name in namespacesNeeded where !state.namespaces.contains(where: { $0.name == name }) {
            state.namespaces.append(NamespaceRecord(name: name, labels: [:]))
            say("namespace/\(name) created (for the objects in it)")
            changed = true
        }
        for spec in set.pods {
            guard let i = state.pods.firstIndex(where: { $0.namespace == spec.namespace && $0.name == spec.name }) else { continue }
            if state.pods[i].labels == spec.labels {
                say("pod/\(spec.id) unchanged")
            } else {
                state.pods[i].labels = spec.labels
                say("pod/\(spec.id) configured (labels)")
                changed = true
            }
        }
        var records = state.policies ?? []
        for policy in set.policies {
            let record = PolicyRecord(policy)
            if let i = records.firstIndex(where: { $0.id == record.id }) {
                if records[i].manifest == record.manifest {
                    say("networkpolicy/\(record.id) unchanged")
                } else {
                    records[i] = record
                    say("networkpolicy/\(record.id) configured")
                    changed = true
                }
            } else {
                records.append(record)
                say("networkpolicy/\(record.id) created")
                changed = true
            }
        }
        state.policies = records
        for spec in set.services {
            let record = ServiceRecord(namespace: spec.namespace, name: spec.name, selector: spec.selector,
                                       ports: spec.ports, clusterIP: clusterIPs[spec.id]!)
            let ports = record.ports.map(\.label).joined(separator: " ")
            if let i = services.firstIndex(where: { $0.id == spec.id }) {
                if services[i] == record {
                    say("service/\(spec.id) unchanged")
                } else {
                    services[i] = record
                    say("service/\(spec.id) configured: \(record.clusterIP) \(ports)")
                    changed = true
                }
            } else {
                services.append(record)
                say("service/\(spec.id) created: \(record.clusterIP) \(ports)")
                changed = true
            }
        }
        if !set.services.isEmpty { state.services = services }
        if changed { try publish(&state) }
        for pod in set.pods where state.pod(pod.namespace, pod.name) == nil {
            try Interrupts.check()
            try createPod(pod, &state)
        }
        if changed { try waitForAgents(state, timeout: wait) }
    }

    public func delete(file: String, wait: Double = 10) throws {
        try Self.requireRoot()
        let set = try readManifests(file)
        let (lock, loaded) = try lockAndLoad()
        defer { Sys.unlock(lock) }
        var state = loaded
        try refuseInKubernetesMode(state, "objects")
        var problems: [String] = []
        var missing: [String] = []
        var changed = false
        for policy in set.policies {
            let id = "\(policy.namespace)/\(policy.name)"
            guard var records = state.policies, let i = records.firstIndex(where: { $0.id == id }) else {
                missing.append("networkpolicy \(id): not found in the lab")
                continue
            }
            records.remove(at: i)
            state.policies = records
            say("networkpolicy/\(id) deleted")
            changed = true
        }
        for spec in set.services {
            guard var records = state.services, let i = records.firstIndex(where: { $0.id == spec.id }) else {
                missing.append("service \(spec.id): not found in the lab")
                continue
            }
            records.remove(at: i)
            state.services = records
            say("service/\(spec.id) deleted")
            changed = true
        }
        if changed { try publish(&state) }
        for spec in set.pods {
            guard let pod = state.pod(spec.namespace, spec.name) else {
                missing.append("pod \(spec.id): not found in the lab")
                continue
            }
            problems += removePod(pod, &state)
            try publish(&state)
            say("pod/\(pod.id) deleted")
            changed = true
        }
        for ns in set.namespaces {
            if ns.name == "default" {
                say("namespace/default kept (it cannot be deleted)")
                continue
            }
            for pod in state.pods where pod.namespace == ns.name {
                problems += removePod(pod, &state)
                try state.save(layout)
                say("pod/\(pod.id) deleted (with its namespace)")
            }
            if let records = state.policies {
                for r in records where r.namespace == ns.name { say("networkpolicy/\(r.id) deleted (with its namespace)") }
                state.policies = records.filter { $0.namespace != ns.name }
            }
            if let records = state.services {
                for r in records where r.namespace == ns.name { say("service/\(r.id) deleted (with its namespace)") }
                state.services = records.filter { $0.namespace != ns.name }
            }
            if state.namespaces.contains(where: { $0.name == ns.name }) {
                state.namespaces.removeAll { $0.name == ns.name }
                say("namespace/\(ns.name) deleted")
            } else {
                missing.append("namespace \(ns.name): not found in the lab")
            }
            try publish(&state)
            changed = true
        }
        if changed { try waitForAgents(state, timeout: wait) }
        let all = problems + missing
        if !all.isEmpty { throw LabError(all.joined(separator: "\n")) }
    }

    /// A new revision of what the agents read: the state first, then the manifests; and the
    /// nodes' kube-proxy stand-in, whose backends follow the pods.
    func publish(_ state: inout LabState) throws(LabError) {
        state.revision = state.revisionNumber + 1
        try state.save(layout)
        try ManifestWriter.writeAll(state, layout: layout)
        if state.services != nil { try programServiceProxies(state) }
    }

    /// Waits until every agent reports that it has programmed the lab's current revision.
    func waitForAgents(_ state: LabState, timeout: Double) throws(LabError) {
        guard state.agents, timeout > 0 else { return }
        let want = state.revisionNumber
        let deadline = Sys.now() + timeout
        var pending = state.nodes
        var last: [String: String] = [:]
        while !pending.isEmpty {
            pending.removeAll { node in
                let client = AgentSocketClient(socketPath: layout.socketPath(node.name), timeoutSeconds: 2)
                guard let answer = try? client.call(.object([("op", .string("agent"))])) else {
                    last[node.name] = "no answer on \(layout.socketPath(node.name))"
                    return false
                }
                guard case .string(let text)? = answer["revision"], let have = Int(text) else {
                    last[node.name] = "no revision programmed yet"
                    return false
                }
                last[node.name] = "at revision \(have)"
                return have >= want
            }
            if pending.isEmpty { return }
            if Sys.now() > deadline {
                let who = pending.map { "\($0.name) (\(last[$0.name] ?? "?"))" }.joined(separator: ", ")
                throw LabError("revision \(want) not programmed within \(Prober.secondsText(timeout)) s by \(who); see their logs in \(layout.stateDir)/nodes/*/logs")
            }
            Sys.sleep(milliseconds: 20)
        }
    }

    /// `uid`: the API's, in Kubernetes mode.
    func createPod(_ spec: PodSpec, _ state: inout LabState, uid: String? = nil) throws {
        let node = state.node(spec.nodeName)!
        let taken = Set(state.pods.map(\.netns) + state.nodes.map(\.netns) + [state.underlayNetns])
        var pod = PodRecord(
            namespace: spec.namespace, name: spec.name, uid: uid ?? UUID().uuidString.lowercased(), node: node.name,
            netns: layout.podNetns(namespace: spec.namespace, pod: spec.name, taken: taken),
            containerID: Sys.randomHex(bytes: 32), labels: spec.labels, containers: spec.containers,
            ips: [], server: nil, phase: .creating)
        func record() throws {
            if let i = state.pods.firstIndex(where: { $0.id == pod.id }) { state.pods[i] = pod } else { state.pods.append(pod) }
            try state.save(layout)
        }
        try record()   // before anything exists, so that `down` finds it whatever happens next
        do {
            try publish(&state)   // the agent learns the pod before its ADD
            let dir = layout.podDir(pod.namespace, pod.name)
            try Sys.makeDirectories(dir)
            _ = try NetworkNamespace.create(named: pod.netns)   // lo up
            try Interrupts.check()
            let result = try runCNI("ADD", pod: pod, node: node, state: state)
            pod.ips = Self.addresses(fromResult: result)
            guard !pod.ips.isEmpty else { throw LabError("CNI ADD returned no addresses: \(String(decoding: result, as: UTF8.self))") }
            try record()
            try Interrupts.check()
            if !pod.ports.isEmpty {
                pod.server = try startServer(pod)
                try record()
            }
            pod.phase = .running
            try record()
            try publish(&state)
            let ports = pod.ports.map(\.label).joined(separator: " ")
            say("pod/\(pod.id) created on \(node.name): \(pod.ips.joined(separator: ", "))\(ports.isEmpty ? "" : ", serving \(ports)")")
        } catch {
            let reason = (error as? LabError)?.message ?? "\(error)"
            removePod(pod, &state, quiet: true)
            try? publish(&state)
            throw LabError("pod \(pod.id): \(reason)")
        }
    }
}

// MARK: - The agents, for trellisctl's status, explain and monitor in lab mode

extension Lab {
    /// Each node's agent socket, in node order.
    public func agentSockets() throws -> [(node: String, socket: String)] {
        let state = try loadForReading()
        guard state.agents else { throw LabError("the lab in \(layout.stateDir) runs without agents (--no-agent)") }
        return state.nodes.map { ($0.name, layout.socketPath($0.name)) }
    }

    /// The node a pod (`NS/POD` or `POD` in default) runs on; nil for anything else.
    public func node(ofPod ref: String) throws -> String? {
        let state = try loadForReading()
        let parts = ref.split(separator: "/", maxSplits: 1).map(String.init)
        let (ns, name) = parts.count == 2 ? (parts[0], parts[1]) : ("default", ref)
        return state.pod(ns, name)?.node
    }
}
