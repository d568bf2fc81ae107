import Dispatch
import Foundation
import Logging
import TrellisAgent
import TrellisKube

/// The lab's Kubernetes mode (`lab up --kubeconfig FILE`): the cluster state lives in an API
/// server instead of the lab's manifests.
///
/// - `up` registers the lab nodes as Node objects (pod CIDRs, InternalIP), annotated with the
///   lab's id, and runs each node's agent with the `kubernetes` source on that kubeconfig;
/// - each node gets a pod runner (`lab kubelet`, hidden), which plays kubelet for the pods bound
///   to its node: it watches them (fieldSelector spec.nodeName), creates the pod's netns and
///   calls the real `trellis` plugin (ADD when a pod appears, DEL when it goes), starts the
///   servers of its declared ports, and writes the pod's status back (podIP(s), hostIP,
///   phase Running, the Ready condition);
/// - pods, namespaces and policies are then made, relabelled and deleted with kubectl; probe,
///   status and the policy tools work as in the manifests mode; `down` deletes the Node
///   objects it registered.
extension Lab {
    static let labAnnotation = "trellis.dev/lab"

    /// Runs async work from this synchronous command (its main thread, never a pool thread).
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let result = Locked<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                let value = try await body()
                result.withLock { $0 = .success(value) }
            } catch {
                result.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        return try result.current!.get()
    }

    /// A client on the lab's kubeconfig; closed by `body`'s end.
    static func withClient<T: Sendable>(_ kubeconfig: String, _ body: @escaping @Sendable (KubeClient) async throws -> T) throws -> T {
        try blocking {
            let client = try KubeClient(config: try .kubeconfig(path: kubeconfig), userAgent: "trellisctl-lab")
            do {
                let value = try await body(client)
                try? await client.shutdown()
                return value
            } catch {
                try? await client.shutdown()
                throw error
            }
        }
    }

    /// Creates the lab's Node objects (or takes over those a failed run of this lab left).
    func registerNodes(_ state: LabState, kubeconfig: String) throws {
        let labID = state.labID
        let nodes = state.nodes
        try Self.withClient(kubeconfig) { client in
            for n in nodes {
                var meta = ObjectMeta(name: n.name, labels: ["kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux"],
                                      annotations: [Self.labAnnotation: labID])
                let node = TrellisKube.Node(metadata: meta, spec: NodeSpec(podCIDR: n.podCIDRs.first, podCIDRs: n.podCIDRs))
                do {
                    _ = try await client.create(node)
                } catch let e as KubeAPIError where e.isAlreadyExists {
                    let existing = try await client.get(TrellisKube.Node.self, name: n.name)
                    guard existing.metadata.annotations?[Self.labAnnotation] == labID else {
                        throw LabError("Node \(n.name) already exists in the cluster and is not this lab's; the lab registers nodes node-1 ... node-N of its own")
                    }
                    meta.annotations = nil
                    _ = try await client.patch(TrellisKube.Node.self, name: n.name, try .merge(TrellisKube.Node(metadata: ObjectMeta(), spec: node.spec)))
                }
                let status = TrellisKube.NodeStatus(addresses: [NodeAddress(type: "InternalIP", address: n.nodeIP),
                                                    NodeAddress(type: "Hostname", address: n.name)])
                _ = try await client.patch(TrellisKube.Node.self, name: n.name,
                                           try .merge(TrellisKube.Node(metadata: ObjectMeta(), status: status)), subresource: "status")
            }
        }
        say("kubernetes: Node objects \(nodes.map(\.name).joined(separator: ", ")) registered")
    }

    /// Deletes the Node objects this lab registered (only those carrying its annotation).
    func deregisterNodes(_ state: LabState) -> [String] {
        guard let kubeconfig = state.kubeconfig else { return [] }
        let labID = state.labID, names = state.nodes.map(\.name)
        do {
            return try Self.withClient(kubeconfig) { client in
                var problems: [String] = []
                for name in names {
                    do {
                        let node = try await client.get(TrellisKube.Node.self, name: name)
                        guard node.metadata.annotations?[Self.labAnnotation] == labID else { continue }
                        try await client.delete(TrellisKube.Node.self, name: name)
                    } catch let e as KubeAPIError where e.isNotFound {
                        continue
                    } catch {
                        problems.append("Node \(name): cannot delete it: \(error)")
                    }
                }
                return problems
            }
        } catch {
            return ["cannot reach the API server of \(kubeconfig) to delete the lab's Node objects: \(error)"]
        }
    }

    /// `trellisctl lab kubelet --node NAME`: an agent-like process in a session of its own.
    func spawnKubelet(_ node: NodeRecord, _ state: LabState) throws(LabError) -> ProcessRef {
        var args = ["lab", "kubelet", "--node", node.name, "--state", layout.stateDir]
        if let bin = explicitBinDir { args += ["--bin-dir", bin] }
        return try Processes.spawn(selfExecutable, args, environment: ProcessInfo.processInfo.environment,
                                   stdout: layout.kubeletLog(node.name), newSession: true)
    }

    /// Starts every node's pod runner and waits until each has started (it forwards a loopback
    /// API server into its node's namespace, which the agent then reaches).
    func startKubelets(_ state: inout LabState) throws {
        for i in state.nodes.indices {
            let ref = try spawnKubelet(state.nodes[i], state)
            state.nodes[i].kubelet = ref
            try state.save(layout)
            say("\(state.nodes[i].name): pod runner pid \(ref.pid) (log \(layout.kubeletLog(state.nodes[i].name)))")
        }
        let deadline = Sys.now() + 10
        for node in state.nodes {
            let log = layout.kubeletLog(node.name)
            while Sys.readText(log)?.contains("pod runner started") != true {
                if let ref = node.kubelet, !Processes.isAlive(ref) {
                    throw LabError("\(node.name): the pod runner (pid \(ref.pid)) exited: " + Sys.tail(log, lines: 5).joined(separator: " | "))
                }
                if Sys.now() > deadline { throw LabError("\(node.name): the pod runner did not start within 10 s; see \(log)") }
                Sys.sleep(milliseconds: 20)
            }
        }
    }

    func refuseInKubernetesMode(_ state: LabState, _ what: String) throws(LabError) {
        if let k = state.kubeconfig {
            throw LabError("this lab takes its \(what) from the Kubernetes API: use kubectl --kubeconfig \(k)", exitCode: 2)
        }
    }
}

// MARK: - The pod runner

extension Lab {
    /// Plays kubelet for one node until SIGTERM: see the extension's overview.
    public func runKubelet(node name: String) throws {
        let state = try loadForReading()
        guard let kubeconfig = state.kubeconfig, let node = state.node(name) else {
            throw LabError("lab kubelet: the lab in \(layout.stateDir) has no Kubernetes mode or no node \(name)")
        }
        var log = Logger(label: "trellis-lab-kubelet")
        log.logLevel = .info
        log[metadataKey: "node.name"] = .string(name)
        let logger = log
        let runner = PodRunner(lab: self, node: node, logger: logger)
        let config = try KubeClientConfig.kubeconfig(path: kubeconfig)
        // The node's agent reaches a loopback API server through this process.
        if let address = APIForwarder.loopbackAddress(of: config.server) {
            let forwarder = try APIForwarder(netnsPath: LabLayout.netnsPath(node.netns), address: address)
            forwarder.start()
            logger.info("forwarding \(address.text) in \(node.netns) to the API server")
        } else {
            logger.info("the API server \(config.server) is not on loopback: the node's agent must reach it by itself")
        }
        try Self.blocking {
            let client = try KubeClient(config: config, userAgent: "trellis-lab-kubelet/\(name)", logger: logger)
            defer { Task { try? await client.shutdown() } }
            let informer = Informer<TrellisKube.Pod>(client: client, options: InformerOptions(fieldSelector: "spec.nodeName=\(name)"),
                                                     logger: logger)
            var cache = InformerCache<TrellisKube.Pod>()
            // As kubelet does: the node is Ready while its pod runner runs.
            let ready = NodeCondition(type: "Ready", status: "True", reason: "TrellisLabPodRunner",
                                      message: "the lab's pod runner plays kubelet on this node",
                                      lastHeartbeatTime: .now, lastTransitionTime: .now)
            _ = try? await client.patch(TrellisKube.Node.self, name: name,
                                        try .strategicMerge(TrellisKube.Node(metadata: ObjectMeta(), status: TrellisKube.NodeStatus(conditions: [ready]))),
                                        subresource: "status")
            logger.info("pod runner started")
            try await withTaskCancellationHandler {
                try await informer.run { event in
                    for change in cache.apply(event) {
                        switch change {
                        case .added(let p), .updated(_, let p):
                            if p.metadata.deletionTimestamp != nil { await runner.remove(p) } else { await runner.ensure(p, client: client) }
                        case .removed(let p):
                            await runner.remove(p)
                        }
                    }
                    if case .synced(let all, _) = event { await runner.forgetAllBut(all) }
                }
            } onCancel: {}
        }
    }
}

/// The pod runner's work, one pod at a time (the lab's own steps are blocking and take its lock).
actor PodRunner {
    let lab: Lab
    let node: NodeRecord
    let logger: Logger
    private let queue = DispatchQueue(label: "trellis lab pod runner")

    init(lab: Lab, node: NodeRecord, logger: Logger) {
        self.lab = lab
        self.node = node
        self.logger = logger
    }

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            queue.async { c.resume(with: Result { try body() }) }
        }
    }

    /// Wires the pod if the lab does not have it yet (retrying as kubelet does: the agent may
    /// not have seen the pod yet and answers "try again"), then writes its status.
    func ensure(_ p: TrellisKube.Pod, client: KubeClient) async {
        guard let name = p.metadata.name, p.spec?.hostNetwork != true else { return }
        let ns = p.metadata.namespace ?? "default"
        let spec = TrellisLab.PodSpec(namespace: ns, name: name, labels: p.metadata.labels ?? [:], nodeName: node.name,
                           containers: (p.spec?.containers ?? []).map { c in
                               ContainerSpec(name: c.name, image: c.image, ports: (c.ports ?? []).compactMap { port in
                                   PortProtocol(rawValue: port.protocol ?? "TCP").map {
                                       PortSpec(name: port.name, port: port.containerPort, proto: $0)
                                   }
                               })
                           })
        let uid = p.metadata.uid ?? ""
        let lab = self.lab
        var delay: Duration = .milliseconds(500)
        for attempt in 1...6 {
            do {
                let ips = try await onQueue { try lab.wireKubePod(spec, uid: uid) }
                if p.ipList != ips || p.status?.phase != "Running" {
                    try await writeStatus(ns: ns, name: name, ips: ips, client: client)
                    logger.info("pod running", metadata: ["pod": "\(ns)/\(name)", "ips": "\(ips.joined(separator: ","))"])
                }
                return
            } catch {
                logger.warning("pod \(ns)/\(name): attempt \(attempt): \(error)")
                try? await Task.sleep(for: delay)
                delay *= 2
            }
        }
        logger.error("pod \(ns)/\(name): giving up")
    }

    func remove(_ p: TrellisKube.Pod) async {
        guard let name = p.metadata.name else { return }
        let ns = p.metadata.namespace ?? "default"
        let lab = self.lab
        do {
            if try await onQueue({ try lab.unwireKubePod(namespace: ns, name: name) }) {
                logger.info("pod removed", metadata: ["pod": "\(ns)/\(name)"])
            }
        } catch {
            logger.error("pod \(ns)/\(name): cannot remove: \(error)")
        }
    }

    /// After a (re)list: pods this node runs that the API no longer has.
    func forgetAllBut(_ pods: [TrellisKube.Pod]) async {
        let keep = Set(pods.compactMap { p in p.metadata.name.map { "\(p.metadata.namespace ?? "default")/\($0)" } })
        let lab = self.lab, node = self.node.name
        guard let running = try? await onQueue({ try lab.loadForReading().pods.filter { $0.node == node }.map(\.id) }) else { return }
        for id in running where !keep.contains(id) {
            let parts = id.split(separator: "/", maxSplits: 1).map(String.init)
            _ = try? await onQueue { try lab.unwireKubePod(namespace: parts[0], name: parts[1]) }
            logger.info("pod removed (gone from the API)", metadata: ["pod": "\(id)"])
        }
    }

    private func writeStatus(ns: String, name: String, ips: [String], client: KubeClient) async throws {
        let now = KubeTime.now
        let conditions = ["PodScheduled", "Initialized", "ContainersReady", "Ready"].map {
            PodCondition(type: $0, status: "True", lastTransitionTime: now)
        }
        let status = TrellisKube.PodStatus(phase: "Running", podIP: ips.first, podIPs: ips.map(PodIP.init), hostIP: node.nodeIP,
                               hostIPs: [HostIP(ip: node.nodeIP)], conditions: conditions)
        _ = try await client.patch(TrellisKube.Pod.self, name: name, namespace: ns,
                                   try .strategicMerge(TrellisKube.Pod(metadata: ObjectMeta(), status: status)), subresource: "status")
    }
}

extension Lab {
    /// The pod runner's ADD: the lab's own pod creation, under the lab's lock; the pod's IPs.
    /// A pod the lab runs already (same API uid) is left as it is.
    func wireKubePod(_ spec: TrellisLab.PodSpec, uid: String) throws -> [String] {
        let (lock, loaded) = try lockAndLoad()
        defer { Sys.unlock(lock) }
        var state = loaded
        if let existing = state.pod(spec.namespace, spec.name) {
            if existing.uid == uid && existing.phase == .running { return existing.ips }
            removePod(existing, &state)
            try state.save(layout)
        }
        try createPod(spec, &state, uid: uid)
        return state.pod(spec.namespace, spec.name)?.ips ?? []
    }

    /// The pod runner's DEL; false when the lab did not run the pod.
    func unwireKubePod(namespace: String, name: String) throws -> Bool {
        let (lock, loaded) = try lockAndLoad()
        defer { Sys.unlock(lock) }
        var state = loaded
        guard let pod = state.pod(namespace, name) else { return false }
        let problems = removePod(pod, &state)
        try state.save(layout)
        if !problems.isEmpty { throw LabError(problems.joined(separator: "; ")) }
        return true
    }
}
