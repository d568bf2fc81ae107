import CoreMetrics
import Prometheus

/// The agent's own metric names, with their help text and type.
public enum AgentMetrics {
    public static let ready = "trellis_agent_ready"
    public static let endpoints = "trellis_agent_endpoints"
    public static let tunnels = "trellis_agent_tunnels"
    public static let peers = "trellis_agent_peers"
    public static let ipcacheEntries = "trellis_agent_ipcache_entries"
    public static let snapshots = "trellis_agent_snapshots_total"
    public static let reconcileFailures = "trellis_agent_reconcile_failures_total"
    public static let handshakes = "trellis_agent_handshake_requests_total"
    public static let policyEntries = "trellis_agent_policy_entries"
    public static let policies = "trellis_agent_network_policies"
    public static let identities = "trellis_agent_identities"

    enum Kind { case gauge, counter }

    static let definitions: [String: (help: String, kind: Kind)] = [
        ready: ("1 when the datapath is loaded, the state synced and the conflist written.", .gauge),
        endpoints: ("Local endpoints (pod interfaces) programmed.", .gauge),
        tunnels: ("Remote pod CIDRs programmed as Geneve tunnels.", .gauge),
        peers: ("Peer nodes whose Geneve traffic is accepted.", .gauge),
        ipcacheEntries: ("ipcache entries (address or prefix -> identity) programmed.", .gauge),
        policyEntries: ("Allow entries of the local pods' NetworkPolicy programmed.", .gauge),
        policies: ("NetworkPolicies known.", .gauge),
        identities: ("Security identities in use (label sets and ipBlock memberships).", .gauge),
        snapshots: ("Cluster state snapshots received from the source.", .counter),
        reconcileFailures: ("Programming actions that failed (retried).", .counter),
        handshakes: ("CNI handshake requests answered.", .counter),
    ]

    /// A metric's type: its definition's, else a counter for a `_total` name, else a gauge.
    static func kind(of name: String) -> Kind {
        definitions[name]?.kind ?? (name.hasSuffix("_total") ? .counter : .gauge)
    }

    /// `name{a="x",b="y"}` -> ("name", [("a", "x"), ("b", "y")]), the labels in the order
    /// written; a key without a well-formed label set is all name.
    static func splitLabels(_ key: String) -> (name: String, labels: [(String, String)]) {
        guard key.hasSuffix("}"), let brace = key.firstIndex(of: "{") else { return (key, []) }
        var labels: [(String, String)] = []
        var rest = key[key.index(after: brace)..<key.index(before: key.endIndex)][...]
        while !rest.isEmpty {
            guard let eq = rest.firstIndex(of: "="), rest[rest.index(after: eq)...].first == "\"" else { return (key, []) }
            let label = String(rest[..<eq])
            var value = ""
            var i = rest.index(eq, offsetBy: 2)
            var closed = false
            while i < rest.endIndex {
                let c = rest[i]
                if c == "\\", rest.index(after: i) < rest.endIndex {
                    i = rest.index(after: i)
                    value.append(rest[i] == "n" ? "\n" : rest[i])
                } else if c == "\"" {
                    closed = true
                    break
                } else {
                    value.append(c)
                }
                i = rest.index(after: i)
            }
            guard closed else { return (key, []) }
            labels.append((label, value))
            rest = rest[rest.index(after: i)...]
            if rest.first == "," { rest = rest.dropFirst() }
        }
        return (String(key[..<brace]), labels)
    }
}

/// The swift-metrics factory over the agent's own `PrometheusCollectorRegistry`: metrics the
/// agent defines get their HELP text (the stock `PrometheusMetricsFactory` registers every
/// metric without one, and the registry refuses a family whose help text changes, so all of a
/// name's handles must come from here); any other metric goes to the stock factory.
struct AgentMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    private let stock: PrometheusMetricsFactory

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        stock = PrometheusMetricsFactory(registry: registry)
    }

    private func descriptor(_ label: String) -> MetricNameDescriptor? {
        AgentMetrics.definitions[label].map { MetricNameDescriptor(metricName: label, unitName: "", helpText: $0.help) }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        guard let d = descriptor(label) else { return stock.makeCounter(label: label, dimensions: dimensions) }
        return registry.makeCounter(descriptor: d, labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        guard let d = descriptor(label) else { return stock.makeFloatingPointCounter(label: label, dimensions: dimensions) }
        return registry.makeCounter(descriptor: d, labels: dimensions)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        guard let d = descriptor(label) else { return stock.makeMeter(label: label, dimensions: dimensions) }
        return registry.makeGauge(descriptor: d, labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard !aggregate, let d = descriptor(label) else {
            return stock.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate)
        }
        return registry.makeGauge(descriptor: d, labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        stock.makeTimer(label: label, dimensions: dimensions)
    }

    func destroyCounter(_ handler: any CounterHandler) { stock.destroyCounter(handler) }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { stock.destroyFloatingPointCounter(handler) }
    func destroyMeter(_ handler: any MeterHandler) { stock.destroyMeter(handler) }
    func destroyRecorder(_ handler: any RecorderHandler) { stock.destroyRecorder(handler) }
    func destroyTimer(_ handler: any TimerHandler) { stock.destroyTimer(handler) }
}

/// Brings the values the agent keeps (its status board, the datapath's BPF counters) into its
/// registry through swift-metrics at scrape time, then renders the Prometheus text exposition
/// (version 0.0.4).
///
/// A sample key is a metric name, optionally followed by its labels as written in the
/// exposition (`drops_total{direction="from_pod",...}`); invalid characters in a name become
/// '_'. Gauges take the value; counters take the growth since the last scrape (the sources
/// keep running totals), and start again from zero when a total went down (the datapath's
/// maps were recreated), which Prometheus reads as a counter reset.
public final class MetricsExposition: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: AgentMetricsFactory

    private enum Handle {
        case gauge(CoreMetrics.Meter)
        case counter(CoreMetrics.Counter, CoreMetrics.FloatingPointCounter, published: Double)
    }

    private let handles = Locked<[String: Handle]>([:])

    /// `registry` is the agent's own: nothing here touches the global `MetricsSystem`.
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        factory = AgentMetricsFactory(registry: registry)
    }

    /// Publishes `samples` and returns the whole registry's exposition.
    public func render(_ samples: [String: Double]) -> String {
        handles.withLock { handles in
            for (key, value) in samples { publish(key, value, into: &handles) }
        }
        return Self.withoutZeroFractions(registry.emitToString())
    }

    /// swift-prometheus writes a gauge's value as Swift prints a Double (`4.0`); the agent's
    /// exposition has always written whole values as integers (`4`), as counters are. Same
    /// number to Prometheus; kept so that what scrapers and tests see does not change.
    static func withoutZeroFractions(_ exposition: String) -> String {
        var out = ""
        out.reserveCapacity(exposition.utf8.count)
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix("#"), line.hasSuffix(".0"), let space = line.lastIndex(of: " "),
               line[line.index(after: space)...].dropLast(2).allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "-") }) {
                out += line.dropLast(2)
            } else {
                out += line
            }
            out += "\n"
        }
        return String(out.dropLast())
    }

    private func publish(_ key: String, _ value: Double, into handles: inout [String: Handle]) {
        if handles[key] == nil {
            let (name, labels) = AgentMetrics.splitLabels(key)
            switch AgentMetrics.kind(of: name) {
            case .gauge:
                handles[key] = .gauge(CoreMetrics.Meter(label: name, dimensions: labels, factory: factory))
            case .counter:
                handles[key] = .counter(CoreMetrics.Counter(label: name, dimensions: labels, factory: factory),
                                        CoreMetrics.FloatingPointCounter(label: name, dimensions: labels, factory: factory), published: 0)
            }
        }
        switch handles[key]! {
        case .gauge(let meter):
            meter.set(value)
        case .counter(let counter, let fractional, var published):
            if value < published {
                counter.reset()
                published = 0
            }
            let growth = value - published
            if growth > 0 {
                // Whole growth as an integer, so that a count renders as `5`, not `5.0`.
                if growth.rounded() == growth, growth < 1e15 { counter.increment(by: Int64(growth)) }
                else { fractional.increment(by: growth) }
            }
            handles[key] = .counter(counter, fractional, published: value)
        }
    }
}
