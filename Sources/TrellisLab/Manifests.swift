import Foundation
import TrellisAgent
import TrellisJSON
import TrellisManifests
import TrellisNet
import TrellisPolicy
import Yams

// The Kubernetes objects the lab understands (Namespace, Pod, Service, NetworkPolicy), read by
// the shared `ManifestFile` (YAML or JSON, multi-document, lists), and the manifests it writes for the agents (Nodes, Namespaces,
// Pods with their status).

public enum PortProtocol: String, Codable, Sendable, Hashable {
    case tcp = "TCP"
    case udp = "UDP"
}

public struct PortSpec: Codable, Sendable, Hashable {
    public var name: String?
    public var port: Int
    public var proto: PortProtocol
    /// `80/TCP`
    public var label: String { "\(port)/\(proto.rawValue)" }
}

public struct ContainerSpec: Codable, Sendable {
    public var name: String
    public var image: String?
    public var ports: [PortSpec]
}

public struct PodSpec: Sendable {
    public var namespace: String
    public var name: String
    public var labels: [String: String]
    public var nodeName: String
    public var containers: [ContainerSpec]
    public var id: String { "\(namespace)/\(name)" }
}

public struct NamespaceSpec: Sendable {
    public var name: String
    public var labels: [String: String]
}

public struct ManifestSet: Sendable {
    public var namespaces: [NamespaceSpec] = []
    public var pods: [PodSpec] = []
    /// networking.k8s.io/v1 NetworkPolicies, validated as the API server would.
    public var policies: [NetworkPolicy] = []
    public var services: [ServiceSpec] = []
}

/// Every problem found in a file, each naming its object; thrown together.
struct ManifestErrors: Error {
    var messages: [String]
}

// MARK: - Reading

extension JSONValue {
    /// The text of a scalar as the lab reads it (`80`, `true`, `web`); nil for null, lists and
    /// mappings. The lab checks its fields itself, so a number written as a string still counts.
    var scalarText: String? {
        switch self {
        case .string(let s): s
        case .bool(let b): b ? "true" : "false"
        case .number(let n): n.rounded() == n && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        case .null, .array, .object: nil
        }
    }

    var isNull: Bool { self == .null }
}

/// The lab's reading of the objects `ManifestFile` finds (the one manifest reader, shared with
/// the agent): Namespaces, Pods and Services checked against what the lab can run, and
/// NetworkPolicies read by the policy parser the agents use, so that the lab accepts exactly
/// what the agents will enforce.
enum ManifestReader {
    static func parse(_ text: String, source: String) throws(ManifestErrors) -> ManifestSet {
        let file: ManifestFile
        do { file = try ManifestFile(parsing: text, path: source) } catch {
            throw ManifestErrors(messages: ["\(error)"])
        }
        var set = ManifestSet()
        var errors = file.problems.map { "\(source): \($0)" }
        for object in file.objects {
            let place = object.location.isEmpty ? source : "\(source): \(object.location)"
            collect(object, where: place, into: &set, errors: &errors)
        }
        var seenPolicies = Set<PolicyKey>()
        for p in set.policies where !seenPolicies.insert(p.key).inserted {
            errors.append("networkpolicy \(p.key): declared more than once in \(source)")
        }
        // The same object twice in one file is a mistake worth naming.
        var seen = Set<String>()
        for p in set.pods where !seen.insert("pod " + p.id).inserted {
            errors.append("pod \(p.id): declared more than once in \(source)")
        }
        var seenServices = Set<String>()
        for s in set.services where !seenServices.insert(s.id).inserted {
            errors.append("service \(s.id): declared more than once in \(source)")
        }
        var seenNS = Set<String>()
        for n in set.namespaces where !seenNS.insert(n.name).inserted {
            errors.append("namespace \(n.name): declared more than once in \(source)")
        }
        if !errors.isEmpty { throw ManifestErrors(messages: errors) }
        return set
    }

    private static func collect(_ object: ManifestObject, where place: String, into set: inout ManifestSet,
                                errors: inout [String]) {
        let doc = object.value
        switch object.kind {
        case "Namespace":
            if let ns = namespace(doc, where: place, errors: &errors) { set.namespaces.append(ns) }
        case "Pod":
            if let pod = pod(doc, where: place, errors: &errors) { set.pods.append(pod) }
        case "NetworkPolicy":
            do { set.policies.append(try NetworkPolicy(parsing: PolicyValue(doc))) } catch {
                errors.append("\(place): \(error)")
            }
        case "Service":
            if let service = service(doc, where: place, errors: &errors) { set.services.append(service) }
        case let kind:
            let name = doc["metadata"]?["name"]?.scalarText.map { " \($0)" } ?? ""
            errors.append("\(place) (\(kind)\(name)): kind \(kind) is not supported by the lab (Namespace, Pod, NetworkPolicy, Service, List)")
        }
    }

    private static func checkAPIVersion(_ doc: JSONValue, object: String, errors: inout [String]) {
        if let v = doc["apiVersion"]?.scalarText, v != "v1" {
            errors.append("\(object): apiVersion \"\(v)\" is not v1")
        }
    }

    private static func labels(_ doc: JSONValue, object: String, errors: inout [String]) -> [String: String] {
        guard let l = doc["metadata"]?["labels"], !l.isNull else { return [:] }
        guard case .object(let members) = l else {
            errors.append("\(object): metadata.labels must be a mapping")
            return [:]
        }
        var out: [String: String] = [:]
        for (k, v) in members.map({ ($0.key, $0.value) }) {
            guard let s = v.scalarText else {
                errors.append("\(object): metadata.labels.\(k) must be a string, found \(v.brief)")
                continue
            }
            if let problem = Names.labelKeyProblem(k) {
                errors.append("\(object): label key \"\(k)\" \(problem)")
            } else if let problem = Names.labelValueProblem(s) {
                errors.append("\(object): label \(k) value \"\(s)\" \(problem)")
            }
            out[k] = s
        }
        return out
    }

    private static func namespace(_ doc: JSONValue, where place: String, errors: inout [String]) -> NamespaceSpec? {
        guard let name = doc["metadata"]?["name"]?.scalarText, !name.isEmpty else {
            errors.append("\(place) (Namespace): metadata.name is required")
            return nil
        }
        let object = "namespace \(name)"
        let before = errors.count
        if let problem = Names.dnsLabelProblem(name) { errors.append("\(object): metadata.name \(problem)") }
        checkAPIVersion(doc, object: object, errors: &errors)
        let l = labels(doc, object: object, errors: &errors)
        return errors.count == before ? NamespaceSpec(name: name, labels: l) : nil
    }

    private static func pod(_ doc: JSONValue, where place: String, errors: inout [String]) -> PodSpec? {
        guard let name = doc["metadata"]?["name"]?.scalarText, !name.isEmpty else {
            errors.append("\(place) (Pod): metadata.name is required")
            return nil
        }
        let namespace = doc["metadata"]?["namespace"]?.scalarText ?? "default"
        let object = "pod \(namespace)/\(name)"
        let before = errors.count
        if let problem = Names.dnsSubdomainProblem(name) { errors.append("\(object): metadata.name \(problem)") }
        if let problem = Names.dnsLabelProblem(namespace) { errors.append("\(object): metadata.namespace \(problem)") }
        checkAPIVersion(doc, object: object, errors: &errors)
        let l = labels(doc, object: object, errors: &errors)
        let spec = doc["spec"]
        let nodeName = spec?["nodeName"]?.scalarText ?? ""
        if nodeName.isEmpty { errors.append("\(object): spec.nodeName is required (the lab node to run on)") }

        var containers: [ContainerSpec] = []
        var seenPorts: [String: String] = [:]   // "80/TCP" -> where
        var seenNames = Set<String>()
        if let cs = spec?["containers"], !cs.isNull {
            guard case .array(let list) = cs else {
                errors.append("\(object): spec.containers must be a list")
                return nil
            }
            for (ci, c) in list.enumerated() {
                let cname = c["name"]?.scalarText ?? "c\(ci)"
                var ports: [PortSpec] = []
                if let ps = c["ports"], !ps.isNull {
                    guard case .array(let plist) = ps else {
                        errors.append("\(object): spec.containers[\(ci)].ports must be a list")
                        continue
                    }
                    for (pi, p) in plist.enumerated() {
                        let field = "spec.containers[\(ci)].ports[\(pi)]"
                        guard let raw = p["containerPort"]?.scalarText else {
                            errors.append("\(object): \(field).containerPort is required")
                            continue
                        }
                        guard let port = Int(raw), (1...65535).contains(port) else {
                            errors.append("\(object): \(field).containerPort \"\(raw)\" is not a port number (1-65535)")
                            continue
                        }
                        let protoText = (p["protocol"]?.scalarText ?? "TCP").uppercased()
                        guard let proto = PortProtocol(rawValue: protoText) else {
                            errors.append("\(object): \(field).protocol \"\(p["protocol"]?.scalarText ?? "")\" is not supported by the lab (TCP or UDP)")
                            continue
                        }
                        let pname = p["name"]?.scalarText
                        if let pname {
                            if let problem = Names.portNameProblem(pname) {
                                errors.append("\(object): \(field).name \"\(pname)\" \(problem)")
                            } else if !seenNames.insert(pname).inserted {
                                errors.append("\(object): \(field).name \"\(pname)\" is used twice")
                            }
                        }
                        let spec = PortSpec(name: pname, port: port, proto: proto)
                        if let other = seenPorts[spec.label] {
                            errors.append("\(object): \(field): \(spec.label) is already declared by \(other)")
                        } else {
                            seenPorts[spec.label] = field
                        }
                        ports.append(spec)
                    }
                }
                containers.append(ContainerSpec(name: cname, image: c["image"]?.scalarText, ports: ports))
            }
        }
        guard errors.count == before else { return nil }
        return PodSpec(namespace: namespace, name: name, labels: l, nodeName: nodeName, containers: containers)
    }
}

extension ManifestReader {
    /// A Service as the lab runs it: type ClusterIP, a selector, ports; a cluster IP, if given,
    /// from the lab's service range.
    static func service(_ doc: JSONValue, where place: String, errors: inout [String]) -> ServiceSpec? {
        guard let name = doc["metadata"]?["name"]?.scalarText, !name.isEmpty else {
            errors.append("\(place) (Service): metadata.name is required")
            return nil
        }
        let namespace = doc["metadata"]?["namespace"]?.scalarText ?? "default"
        let object = "service \(namespace)/\(name)"
        let before = errors.count
        if let problem = Names.dnsLabelProblem(name) { errors.append("\(object): metadata.name \(problem)") }
        if let problem = Names.dnsLabelProblem(namespace) { errors.append("\(object): metadata.namespace \(problem)") }
        if let v = doc["apiVersion"]?.scalarText, v != "v1" { errors.append("\(object): apiVersion \"\(v)\" is not v1") }
        let spec = doc["spec"]
        if let type = spec?["type"]?.scalarText, type != "ClusterIP" {
            errors.append("\(object): spec.type \(type) is not supported by the lab (ClusterIP)")
        }
        var selector: [String: String] = [:]
        if case .object(let members)? = spec?["selector"] {
            for (k, v) in members.map({ ($0.key, $0.value) }) {
                guard let s = v.scalarText else { errors.append("\(object): spec.selector.\(k) must be a string"); continue }
                selector[k] = s
            }
        }
        if selector.isEmpty { errors.append("\(object): spec.selector is required (the lab picks backends by it)") }
        var clusterIP = spec?["clusterIP"]?.scalarText
        if clusterIP == "" { clusterIP = nil }
        if let ip = clusterIP {
            if ip == "None" {
                errors.append("\(object): spec.clusterIP None (headless) is not supported by the lab")
            } else if let a = IPAddress(ip), a.family == .v4 {
                if !LabServices.cidr.contains(a) { errors.append("\(object): spec.clusterIP \(ip) is outside the lab's service range \(LabServices.cidr)") }
            } else {
                errors.append("\(object): spec.clusterIP \"\(ip)\" is not an IPv4 address")
            }
        }
        var ports: [ServicePortSpec] = []
        if case .array(let list)? = spec?["ports"] {
            var seen = Set<String>()
            for (i, p) in list.enumerated() {
                let field = "spec.ports[\(i)]"
                guard let raw = p["port"]?.scalarText, let port = Int(raw), (1...65535).contains(port) else {
                    errors.append("\(object): \(field).port is required (1-65535)")
                    continue
                }
                let protoText = (p["protocol"]?.scalarText ?? "TCP").uppercased()
                guard let proto = PortProtocol(rawValue: protoText) else {
                    errors.append("\(object): \(field).protocol \"\(protoText)\" is not supported by the lab (TCP or UDP)")
                    continue
                }
                let target = p["targetPort"]?.scalarText ?? String(port)
                if let n = Int(target) {
                    if !(1...65535).contains(n) { errors.append("\(object): \(field).targetPort \(n) is not a port (1-65535)") }
                } else if let problem = Names.portNameProblem(target) {
                    errors.append("\(object): \(field).targetPort \"\(target)\" \(problem)")
                }
                let spec = ServicePortSpec(name: p["name"]?.scalarText, port: port, targetPort: target, proto: proto)
                if !seen.insert(spec.label).inserted { errors.append("\(object): \(field): \(spec.label) is declared twice") }
                ports.append(spec)
            }
        }
        if ports.isEmpty { errors.append("\(object): spec.ports is required") }
        guard errors.count == before else { return nil }
        return ServiceSpec(namespace: namespace, name: name, selector: selector, ports: ports, clusterIP: clusterIP)
    }
}

/// Kubernetes' naming rules, worded as "metadata.name " + reason.
enum Names {
    static func dnsLabelProblem(_ s: String) -> String? {
        if s.count > 63 { return "\"\(s)\" is longer than 63 characters" }
        if !s.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" })
            || s.first == "-" || s.last == "-" || s.isEmpty {
            return "\"\(s)\" must consist of lower-case letters, digits and '-', starting and ending with a letter or digit"
        }
        return nil
    }

    static func dnsSubdomainProblem(_ s: String) -> String? {
        if s.count > 253 { return "\"\(s)\" is longer than 253 characters" }
        for part in s.split(separator: ".", omittingEmptySubsequences: false) {
            if dnsLabelProblem(String(part)) != nil {
                return "\"\(s)\" must consist of lower-case letters, digits, '-' and '.', each part starting and ending with a letter or digit"
            }
        }
        return nil
    }

    static func portNameProblem(_ s: String) -> String? {
        if s.isEmpty || s.count > 15 { return "must be 1-15 characters" }
        if !s.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" })
            || !s.contains(where: { ("a"..."z").contains($0) }) || s.first == "-" || s.last == "-" || s.contains("--") {
            return "must be lower-case letters, digits and single '-', with at least one letter (IANA service name)"
        }
        return nil
    }

    private static func isLabelChar(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || c == ".")
    }

    static func labelValueProblem(_ s: String) -> String? {
        if s.isEmpty { return nil }
        if s.count > 63 { return "is longer than 63 characters" }
        if !s.allSatisfy(isLabelChar) || !(s.first!.isLetter || s.first!.isNumber) || !(s.last!.isLetter || s.last!.isNumber) {
            return "must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        }
        return nil
    }

    static func labelKeyProblem(_ k: String) -> String? {
        let parts = k.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.last, !name.isEmpty else { return "is not [prefix/]name" }
        if parts.count == 2, dnsSubdomainProblem(String(parts[0])) != nil { return "has an invalid prefix" }
        return labelValueProblem(String(name)).map { "name part " + $0 }
    }
}

// MARK: - Writing the agents' manifests

enum ManifestWriter {
    static func s(_ text: String) -> Node { .scalar(text.represented()) }
    static func n(_ value: Int) -> Node { Node(String(value)) }
    static func map(_ pairs: [(String, Node)]) -> Node { .mapping(Node.Mapping(pairs.map { (s($0.0), $0.1) })) }
    static func list(_ items: [Node]) -> Node { .sequence(Node.Sequence(items)) }
    static func labels(_ l: [String: String]) -> Node { map(l.sorted { $0.key < $1.key }.map { ($0.key, s($0.value)) }) }

    /// A `v1` `List` document with a comment header: always one valid document, also when empty.
    static func document(_ items: [Node], header: String) throws(LabError) -> String {
        let root = map([("apiVersion", s("v1")), ("kind", s("List")), ("items", list(items))])
        do {
            return "# \(header)\n" + (try Yams.serialize(node: root, width: -1))
        } catch {
            throw LabError("write YAML: \(error)")
        }
    }

    static func node(_ n: NodeRecord, revision: String) -> Node {
        map([
            ("apiVersion", s("v1")), ("kind", s("Node")),
            ("metadata", map([
                ("name", s(n.name)), ("resourceVersion", s(revision)),
                ("labels", labels(["kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux"])),
            ])),
            ("spec", map([
                ("podCIDR", s(n.podCIDRs[0])),
                ("podCIDRs", list(n.podCIDRs.map(s))),
            ])),
            ("status", map([
                ("addresses", list([
                    map([("type", s("InternalIP")), ("address", s(n.nodeIP))]),
                    map([("type", s("Hostname")), ("address", s(n.name))]),
                ])),
            ])),
        ])
    }

    static func namespace(_ ns: NamespaceRecord, revision: String) -> Node {
        var l = ns.labels
        l["kubernetes.io/metadata.name"] = ns.name
        return map([
            ("apiVersion", s("v1")), ("kind", s("Namespace")),
            ("metadata", map([("name", s(ns.name)), ("resourceVersion", s(revision)), ("labels", labels(l))])),
        ])
    }

    static func pod(_ p: PodRecord, hostIP: String, revision: String) -> Node {
        let containers = p.containers.map { c -> Node in
            var pairs: [(String, Node)] = [("name", s(c.name))]
            if let image = c.image { pairs.append(("image", s(image))) }
            if !c.ports.isEmpty {
                pairs.append(("ports", list(c.ports.map { port -> Node in
                    var pp: [(String, Node)] = []
                    if let name = port.name { pp.append(("name", s(name))) }
                    pp.append(("containerPort", n(port.port)))
                    pp.append(("protocol", s(port.proto.rawValue)))
                    return map(pp)
                })))
            }
            return map(pairs)
        }
        var status: [(String, Node)] = [
            ("phase", s(p.phase == .running ? "Running" : "Pending")),
            ("hostIP", s(hostIP)),
            ("hostIPs", list([map([("ip", s(hostIP))])])),
        ]
        if let first = p.ips.first {
            status.append(("podIP", s(first)))
            status.append(("podIPs", list(p.ips.map { map([("ip", s($0))]) })))
        }
        return map([
            ("apiVersion", s("v1")), ("kind", s("Pod")),
            ("metadata", map([
                ("name", s(p.name)), ("namespace", s(p.namespace)), ("uid", s(p.uid)),
                ("resourceVersion", s(revision)), ("labels", labels(p.labels)),
            ])),
            ("spec", map([("nodeName", s(p.node)), ("containers", list(containers))])),
            ("status", map(status)),
        ])
    }

    /// Writes nodes.yaml, namespaces.yaml, pods.yaml and policies.json (each atomically). A pod
    /// is listed from before its CNI ADD (Pending, no addresses), as the API server has it before
    /// kubelet wires it: its node's agent answers the ADD only once it knows the pod's labels, to
    /// program its policy first. Every object carries the lab's revision as its
    /// `resourceVersion`; the agents report the highest they have programmed (`lab apply` waits
    /// for it).
    static func writeAll(_ state: LabState, layout: LabLayout) throws(LabError) {
        let header = "Written by `trellisctl lab` for the lab in \(state.stateDir); rewritten on every change."
        let rev = String(state.revisionNumber)
        try Sys.writeAtomically(try document(state.nodes.map { node($0, revision: rev) }, header: header), to: layout.nodesManifest)
        try Sys.writeAtomically(try document(state.namespaces.map { namespace($0, revision: rev) }, header: header),
                                to: layout.namespacesManifest)
        let pods = state.pods.map { p in pod(p, hostIP: state.node(p.node)?.nodeIP ?? "", revision: rev) }
        try Sys.writeAtomically(try document(pods, header: header), to: layout.podsManifest)
        let items: [PolicyValue] = state.networkPolicies.map { p in
            guard case .object(var members) = p.manifest, let i = members.firstIndex(where: { $0.key == "metadata" }),
                  case .object(var meta) = members[i].value else { return p.manifest }
            meta.append((key: "resourceVersion", value: .string(rev)))
            members[i] = (key: "metadata", value: .object(meta))
            return .object(members)
        }
        let list: PolicyValue = .object([("apiVersion", "v1"), ("kind", "List"), ("items", .array(items))])
        try Sys.writeAtomically(list.json + "\n", to: layout.policiesManifest)
        try Sys.writeAtomically(try document((state.services ?? []).map { service($0, revision: rev) }, header: header),
                                to: layout.servicesManifest)
    }
}
