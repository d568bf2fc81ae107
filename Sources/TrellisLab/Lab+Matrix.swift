import Foundation
import TrellisJSON
import TrellisNet

/// `lab probe --matrix`: every ordered pair of distinct pods, and the table it prints.
extension Lab {
    /// The outcome of `probe --matrix`: every ordered pair of distinct pods on some ports.
    public struct Matrix: Sendable {
        public struct Cell: Sendable {
            public var from: String
            public var to: String
            public var port: UInt16
            public var proto: PortProtocol
            public var outcome: ProbeOutcome
            public var timeout: Double
        }
        /// Running pods, sorted; their ids head the rows and columns.
        public var pods: [String]
        /// The ports probed per destination, in order.
        public var ports: [String: [(UInt16, PortProtocol)]]
        /// Whether the ports were given (the same for every destination).
        public var portsGiven: Bool
        public var cells: [Cell]
        public var timeout: Double

        public func cell(from: String, to: String, port: UInt16, proto: PortProtocol) -> Cell? {
            cells.first { $0.from == from && $0.to == to && $0.port == port && $0.proto == proto }
        }

        /// The table `probe --matrix` prints.
        public var text: String {
            func label(_ d: String) -> String {
                let p = (ports[d] ?? []).map { "\($0.0)/\($0.1.rawValue)" }
                return !portsGiven && !p.isEmpty ? "\(d) \(p.joined(separator: ","))" : d
            }
            var table: [[String]] = [["FROM \\ TO"] + pods.map(label)]
            for s in pods {
                var row = [s]
                for d in pods {
                    if s == d { row.append("self"); continue }
                    let mine = (ports[d] ?? []).compactMap { cell(from: s, to: d, port: $0.0, proto: $0.1) }
                    row.append(mine.isEmpty ? "(no ports)" : mine.map { $0.outcome.ok ? "ok" : "--" }.joined(separator: " "))
                }
                table.append(row)
            }
            let anyPorts = pods.first.flatMap { ports[$0] } ?? []
            let what = !portsGiven ? "each destination's declared ports (in its column)"
                : anyPorts.map { "\($0.0)/\($0.1.rawValue)" }.joined(separator: " ")
            let header = "per cell: \(what); ok: connected and answered, --: refused, blocked or unreachable (timeout \(Prober.secondsText(timeout)) s)"
            return header + "\n" + Lab.render(table)
        }

        /// One object per probe: from, to, port, protocol, ok, outcome.
        public var json: JSONValue {
            .object([
                ("pods", .strings(pods)), ("timeoutSeconds", .number(timeout)),
                ("probes", .array(cells.map { c in
                    .object([("from", .string(c.from)), ("to", .string(c.to)), ("port", .int(Int(c.port))),
                             ("protocol", .string(c.proto.rawValue)), ("ok", .bool(c.outcome.ok)),
                             ("outcome", .string(c.outcome.text(timeout: c.timeout)))])
                })),
            ])
        }
    }

    /// Every ordered pair of distinct pods: on `ports` when given, otherwise on the ports each
    /// destination declares.
    public func matrix(ports portTexts: [String], timeout: Double, ipv6: Bool = false) throws -> Matrix {
        try Self.requireRoot()
        let state = try loadForReading()
        let pods = state.pods.filter { $0.phase == .running }.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
        guard !pods.isEmpty else { throw LabError("no pods in the lab (`trellisctl lab apply -f FILE` adds some)", exitCode: 2) }
        var given: [(UInt16, PortProtocol)] = []
        for t in portTexts { given.append(try Self.parsePort(t, destination: nil)) }
        func ports(of pod: PodRecord) -> [(UInt16, PortProtocol)] {
            if !given.isEmpty { return given }
            var seen = Set<PortSpec>()
            return pod.ports.compactMap { p in
                seen.insert(PortSpec(name: nil, port: p.port, proto: p.proto)).inserted ? (UInt16(p.port), p.proto) : nil
            }
        }
        guard pods.contains(where: { !ports(of: $0).isEmpty }) else {
            throw LabError("no pod declares a port; name some: --matrix 80/TCP 53/UDP", exitCode: 2)
        }
        var requests: [ProbeRequest] = []
        var meta: [(from: String, to: String, port: UInt16, proto: PortProtocol)] = []
        for s in pods {
            for d in pods where s.id != d.id {
                let ip = try Self.destination(d, ipv6: ipv6)
                for (port, proto) in ports(of: d) {
                    requests.append(ProbeRequest(sourceNetns: s.netns, address: SocketAddress(ip: ip, port: port),
                                                 proto: proto, expected: d.id))
                    meta.append((s.id, d.id, port, proto))
                }
            }
        }
        let outcomes = try Prober.run(requests, timeout: timeout)
        let cells = zip(meta, outcomes).map { m, o in
            Matrix.Cell(from: m.from, to: m.to, port: m.port, proto: m.proto, outcome: o, timeout: timeout)
        }
        return Matrix(pods: pods.map(\.id), ports: Dictionary(uniqueKeysWithValues: pods.map { ($0.id, ports(of: $0)) }),
                      portsGiven: !given.isEmpty, cells: cells, timeout: timeout)
    }

    /// Columns padded to their widest cell, two spaces apart.
    public static func render(_ rows: [[String]]) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { r in
            r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0) }.joined()
        }.joined(separator: "\n")
    }
}
