import Foundation
import Logging
import ServiceLifecycle
import TrellisJSON
import TrellisKube
import TrellisNet

/// What the agent is built from; the executable provides the real ones, tests fakes.
public struct AgentDependencies: Sendable {
    /// Loads the datapath (opens and loads the BPF objects, pins maps) and returns its programmer.
    public var makeProgrammer: @Sendable (AgentConfig, Logger) async throws -> any DatapathProgrammer
    public var source: any ClusterSource
    public var links: any LinkInspector
    public var masquerade: any MasqueradeApplier
    /// How often endpoints whose host veth vanished are looked for.
    public var sweepInterval: Duration
    /// The first delay before a failed pass is retried; it doubles up to `maxRetryInterval`.
    public var retryInterval: Duration
    public var maxRetryInterval: Duration

    public init(makeProgrammer: @escaping @Sendable (AgentConfig, Logger) async throws -> any DatapathProgrammer,
                source: any ClusterSource, links: any LinkInspector = NetlinkLinkInspector(),
                masquerade: any MasqueradeApplier = NftApplier(),
                sweepInterval: Duration = .seconds(5), retryInterval: Duration = .seconds(1),
                maxRetryInterval: Duration = .seconds(30)) {
        self.makeProgrammer = makeProgrammer
        self.source = source
        self.links = links
        self.masquerade = masquerade
        self.sweepInterval = sweepInterval
        self.retryInterval = retryInterval
        self.maxRetryInterval = maxRetryInterval
    }

    /// The source `config.source` names. For `kubernetes`: the kubeconfig in the config, or the
    /// pod's service account.
    public static func source(for config: AgentConfig, logger: Logger) throws -> any ClusterSource {
        switch config.source {
        case .manifests:
            return ManifestsSource(directory: config.manifestsDir, logger: logger)
        case .kubernetes:
            let client: KubeClientConfig
            do { client = try KubernetesSource.clientConfig(kubeconfig: config.kubeconfig) } catch {
                throw AgentConfigError(key: config.kubeconfig.isEmpty ? "source" : "kubeconfig", message: "\(error)")
            }
            return try KubernetesSource(config: client, logger: logger)
        }
    }
}

/// The node agent: loads the datapath, adopts what it already programmed, waits for its own
/// Node, programs the node config and the underlay, serves the CNI handshake, reconciles the
/// overlay and the ipcache on every cluster snapshot, keeps the masquerade table, writes the
/// conflist, and then reports ready.
///
/// `run()` returns when its task is cancelled or shut down gracefully (SIGTERM): it stops
/// serving and removes its socket, and leaves every program, map and nft rule in place, so
/// traffic keeps flowing until the next agent takes over.
public final class Agent: ServiceLifecycle.Service, Sendable {
    public let config: AgentConfig
    public let board = StatusBoard()
    private let logger: Logger
    private let deps: AgentDependencies
    /// The port the health server bound (interesting when the config asked for port 0).
    private let boundHealthPort = Locked<UInt16?>(nil)
    /// The agent's own metrics registry (never the global `MetricsSystem`), rendered by /metrics.
    public let metrics = MetricsExposition()

    public init(config: AgentConfig, logger: Logger, dependencies: AgentDependencies) {
        var l = logger
        l[metadataKey: "node.name"] = .string(config.nodeName)
        self.logger = l
        self.config = config
        self.deps = dependencies
    }

    public var healthPort: UInt16? { boundHealthPort.current }

    private enum Event: Sendable {
        case snapshot(ClusterSnapshot)
        case tick
    }

    /// Runs until its task is cancelled or a graceful shutdown (SIGTERM in the executable's
    /// ServiceGroup) reaches it. The health server binds first, so that a port in use fails
    /// start-up before anything else is touched; then its services start in order, and a
    /// graceful shutdown stops them in reverse: the reconciler (handshake socket, monitors,
    /// source) first, the health server last.
    public func run() async throws {
        logger.info("trellis-agent starting", metadata: [
            "config.source": "\(config.source.rawValue)", "datapath.mode": "\(config.datapathMode.rawValue)",
            "socket.path": "\(config.socketPath)"])
        board.notReady("loading the datapath")
        let programmerBox = Locked<(any DatapathProgrammer)?>(nil)
        let health = try HealthServer(address: config.healthAddress, logger: logger, report: { [board] in board.report },
                                      extraMetrics: { programmerBox.current?.metrics() ?? [:] }, metrics: metrics)
        boundHealthPort.withLock { $0 = health.port }
        let reconciler = ReconcilerService { [self] in
            try await cancelWhenGracefulShutdown { try await self.serve(programmerBox: programmerBox) }
        }
        // The reconciler ending, by shutdown or failure, ends the agent: the group shuts the
        // health server down and rethrows the reconciler's error, if any.
        let services = ServiceGroup(configuration: ServiceGroupConfiguration(services: [
            .init(service: health),
            .init(service: reconciler, successTerminationBehavior: .gracefullyShutdownGroup,
                  failureTerminationBehavior: .gracefullyShutdownGroup),
        ], logger: logger))
        try await services.run()
        logger.info("trellis-agent stopping; the datapath stays programmed")
    }

    /// Loads the datapath, then reconciles until cancelled.
    private struct ReconcilerService: ServiceLifecycle.Service {
        let body: @Sendable () async throws -> Void
        func run() async throws { try await body() }
    }

    private func serve(programmerBox: Locked<(any DatapathProgrammer)?>) async throws {
        let programmer: any DatapathProgrammer
        do { programmer = try await deps.makeProgrammer(config, logger) } catch {
            logger.critical("cannot load the datapath: \(error)")
            throw error
        }
        programmerBox.withLock { $0 = programmer }
        let controller = DatapathController(programmer: programmer, links: deps.links, nodeName: config.nodeName,
                                            vni: config.vni, mode: config.datapathMode, board: board, logger: logger)
        for f in await controller.adopt() { logger.error("adoption: \(f)") }
        let monitor = DropMonitor(programmer: programmer, node: config.nodeName, names: controller.names, logger: logger)
        monitor.start()

        var loop = Loop(agent: self, controller: controller, monitor: monitor)
        do {
            try await runLoop(&loop)
        } catch {
            await stop(loop)
            throw error
        }
        await stop(loop)
    }

    /// Ends the monitors' streams first: the socket server waits for its connections.
    private func stop(_ loop: Loop) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread { loop.monitor.stop(); done.resume() }.start()
        }
        await loop.handshake?.stop()
        await deps.source.shutdown()
    }

    private func runLoop(_ loop: inout Loop) async throws {
        board.notReady("waiting for the cluster state")
        let (events, continuation) = AsyncStream.makeStream(of: Event.self)
        let source = deps.source
        let tick = min(deps.retryInterval, .seconds(1))
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                for await s in source.snapshots() { continuation.yield(.snapshot(s)) }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: tick)
                    continuation.yield(.tick)
                }
            }
            for await event in events {
                switch event {
                case .snapshot(let s):
                    board.add(AgentMetrics.snapshots)
                    loop.latest = s
                    try await loop.pass()
                case .tick:
                    try await loop.onTick()
                }
            }
            group.cancelAll()
        }
    }

    /// The sequential part of the agent: one pass at a time, from snapshots and timers.
    private struct Loop {
        let agent: Agent
        let controller: DatapathController
        let monitor: DropMonitor
        var latest: ClusterSnapshot?
        var handshake: HandshakeServer?
        var appliedMasquerade: String?
        var markedAvailable = false
        var lastWaiting: String?
        var warnedMTU: Int?
        var retryAt: ContinuousClock.Instant?
        var backoff: Duration?
        var nextSweep = ContinuousClock.now

        var config: AgentConfig { agent.config }
        var logger: Logger { agent.logger }

        init(agent: Agent, controller: DatapathController, monitor: DropMonitor) {
            self.agent = agent
            self.controller = controller
            self.monitor = monitor
        }

        mutating func onTick() async throws {
            let now = ContinuousClock.now
            if let retryAt, now >= retryAt { try await pass() }
            if handshake != nil, now >= nextSweep {
                nextSweep = now + agent.deps.sweepInterval
                await controller.sweep()
            }
        }

        /// Brings everything to the latest snapshot. Throws only for what the agent cannot go
        /// on from (the handshake socket cannot be served).
        mutating func pass() async throws {
            retryAt = nil
            guard let snapshot = latest else { return }
            let own: OwnNode
            switch NodeDiscovery.find(snapshot, nodeName: config.nodeName) {
            case .failure(let waiting):
                if lastWaiting != waiting.description {
                    agent.board.isReady ? logger.warning("\(waiting); keeping what is programmed")
                        : logger.info("waiting: \(waiting)")
                    lastWaiting = waiting.description
                }
                agent.board.notReady(waiting.description)
                return  // the next snapshot brings it
            case .success(let node):
                own = node
                if lastWaiting != nil { logger.info("own Node found", metadata: ["node.ip": "\(node.nodeIP)"]) }
                lastWaiting = nil
            }

            var failures: [String] = []
            let underlay: LinkFacts
            do {
                guard let found = try agent.deps.links.link(named: config.underlayDevice) else {
                    return retryLater("underlay device \(config.underlayDevice) does not exist")
                }
                underlay = found
            } catch {
                return retryLater("cannot look up the underlay device \(config.underlayDevice): \(error)")
            }
            if config.mtu != 0, config.mtu > underlay.mtu - AgentConfig.geneveOverhead, warnedMTU != underlay.mtu {
                let most = underlay.mtu - AgentConfig.geneveOverhead
                logger.warning("""
                    mtu \(config.mtu) leaves no room for Geneve on \(config.underlayDevice) (MTU \(underlay.mtu)): \
                    encapsulated full-size packets will be dropped; use at most \(most), or 0
                    """)
                warnedMTU = underlay.mtu
            }
            do {
                try await controller.programNode(own, underlayIfindex: underlay.index, overlayName: config.overlayDevice,
                                                 podMTU: config.podMTU(underlayMTU: underlay.mtu))
            } catch {
                return retryLater("cannot program the node config: \(error)")
            }
            if handshake == nil {
                let server: HandshakeServer
                do {
                    server = try HandshakeServer(path: config.socketPath, logger: logger, handler: { [controller] request in
                        await controller.handle(request)
                    }, streamer: { [monitor] request, fd in
                        if case .monitor(let filter) = request { monitor.stream(to: fd, filter: filter) }
                    })
                } catch {
                    logger.critical("cannot serve the CNI handshake: \(error)")
                    throw error
                }
                server.start()
                handshake = server
                logger.info("serving the CNI handshake", metadata: ["socket.path": "\(config.socketPath)"])
                await controller.sweep()
                nextSweep = ContinuousClock.now + agent.deps.sweepInterval
            }

            failures += await controller.reconcile(snapshot).map(\.description)

            let script = MasqueradeRules.script(
                enabled: config.masquerade, podCIDRs: own.podCIDRs,
                clusterCIDRs: NodeDiscovery.clusterCIDRs(snapshot, configured: config.clusterCIDRs),
                overlayDevice: config.overlayDevice)
            if script != appliedMasquerade {
                do {
                    logger.debug("programming: nft table inet \(MasqueradeRules.table)", metadata: ["nft.script": "\(script)"])
                    try await agent.deps.masquerade.apply(script: script)
                    logger.info(config.masquerade ? "masquerade rules applied" : "masquerade rules applied (overlay only)",
                                metadata: ["pod.cidrs": "\(own.podCIDRs.map(\.description).joined(separator: ","))"])
                    appliedMasquerade = script
                } catch where !config.masquerade {
                    // Only the overlay rule: the node's own Service traffic to pods on other
                    // nodes depends on it, pods do not; never worth holding readiness for.
                    logger.warning("cannot apply the nft table inet \(MasqueradeRules.table) (masquerade is off; the node's own Service traffic to other nodes' pods will fail): \(error)")
                    appliedMasquerade = script
                } catch {
                    failures.append("masquerade: \(error)")
                }
            }

            // The cluster learns the node's network is up (Node condition NetworkUnavailable=False)
            // after the first error-free sync, before the conflist lets kubelet start pods here.
            if failures.isEmpty && !markedAvailable {
                do {
                    try await agent.deps.source.markNetworkAvailable(nodeName: config.nodeName)
                    markedAvailable = true
                    logger.info("Node condition NetworkUnavailable=False (TrellisIsUp) set")
                } catch {
                    failures.append("cannot set the Node condition NetworkUnavailable=False: \(error)")
                }
            }

            // The conflist opens the node to pods: only after an error-free sync the first time;
            // later it follows pod CIDR and MTU changes whatever else fails.
            if failures.isEmpty || agent.board.isReady {
                let writer = ConflistWriter(directory: config.cniConfDir, fileName: config.cniConfName)
                let conflist = ConflistWriter.render(mode: config.datapathMode, mtu: config.podMTU(underlayMTU: underlay.mtu),
                                                     agentSocket: config.socketPath, podCIDRs: own.podCIDRs,
                                                     ipamDataDir: config.ipamDataDir)
                do {
                    if try writer.write(conflist) == .written {
                        logger.info("conflist written", metadata: ["conflist.path": "\(writer.path)"])
                    }
                } catch {
                    failures.append("conflist \(writer.path): \(error)")
                }
            }

            if failures.isEmpty {
                backoff = nil
                if !agent.board.isReady {
                    agent.board.markReady()
                    logger.info("ready")
                }
            } else {
                for f in failures { logger.error("reconcile: \(f)") }
                retryLater(failures.count == 1 ? failures[0] : "\(failures[0]) (and \(failures.count - 1) more)")
            }
        }

        mutating func retryLater(_ reason: String) {
            let delay = backoff.map { min($0 * 2, agent.deps.maxRetryInterval) } ?? agent.deps.retryInterval
            backoff = delay
            retryAt = ContinuousClock.now + delay
            agent.board.notReady(reason)
            logger.warning("will retry in \(delay): \(reason)")
        }
    }
}
