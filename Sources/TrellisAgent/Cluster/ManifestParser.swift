import Foundation
import TrellisJSON
import TrellisManifests
import TrellisNet
import TrellisPolicy

/// One object of a manifest that the agent reads; other kinds are ignored.
public enum ClusterObject: Sendable, Equatable {
    case node(ClusterNode)
    case namespace(ClusterNamespace)
    case pod(ClusterPod)
    case networkPolicy(NetworkPolicy)
    case service(ClusterService)

    var kindAndName: String {
        switch self {
        case .node(let n): "Node \(n.name)"
        case .namespace(let n): "Namespace \(n.name)"
        case .pod(let p): "Pod \(p.key)"
        case .networkPolicy(let p): "NetworkPolicy \(p.key)"
        case .service(let s): "Service \(s.key)"
        }
    }
}

extension ClusterSnapshot {
    /// Adds (or replaces) one object read from a manifest.
    public mutating func insert(_ object: ClusterObject) {
        switch object {
        case .node(let n): nodes[n.name] = n
        case .namespace(let n): namespaces[n.name] = n
        case .pod(let p): pods[p.key] = p
        case .networkPolicy(let p): policies[p.key] = p
        case .service(let s): services[s.key] = s
        }
    }
}

/// What one manifest file holds: the objects read, and the objects that were skipped because
/// a field was wrong (each named, with the field).
public struct ManifestContent: Sendable, Equatable {
    public var objects: [ClusterObject]
    public var problems: [String]
    /// The highest `metadata.resourceVersion` (a number) among the file's objects.
    public var highestResourceVersion: UInt64?
    /// The problems of NetworkPolicy objects (also in `problems`): `lab apply` refuses them,
    /// as the API server would.
    public var policyProblems: [String] = []
}

/// The agent's reading of manifest objects (`ManifestFile` reads the files): Kinds other than
/// Node, Namespace, Pod, NetworkPolicy and Service are ignored.
/// An object with a wrong field is skipped and reported; the rest of its file still counts.
public enum ManifestParser {
    public static func parse(_ text: String, path: String) throws(ManifestError) -> ManifestContent {
        let file = try ManifestFile(parsing: text, path: path)
        var content = ManifestContent(objects: [], problems: file.problems, highestResourceVersion: nil)
        for object in file.objects { read(object, into: &content) }
        return content
    }

    private static func read(_ object: ManifestObject, into content: inout ManifestContent) {
        let kind = object.kind
        guard let r = try? TreeReader(object.value) else { return }  // ManifestFile gives mappings only
        if let rv = (try? r.object("metadata")?.string("resourceVersion")).flatMap({ $0 }).flatMap({ UInt64($0) }) {
            content.highestResourceVersion = max(content.highestResourceVersion ?? 0, rv)
        }
        if kind == "NetworkPolicy" {
            do {
                content.objects.append(.networkPolicy(try NetworkPolicy(parsing: PolicyValue(object.value))))
            } catch {
                content.problems.append(object.located("\(error), skipped"))
                content.policyProblems.append(object.located("\(error)"))
            }
            return
        }
        do {
            switch kind {
            case "Node": content.objects.append(.node(try node(r)))
            case "Namespace": content.objects.append(.namespace(try namespace(r)))
            case "Pod": content.objects.append(.pod(try pod(r)))
            case "Service": content.objects.append(.service(try service(r)))
            default: return  // not ours
            }
        } catch {
            let name = (try? r.object("metadata")?.string("name")) ?? nil
            let what = name.map { "\(kind) \($0)" } ?? kind
            content.problems.append(object.located("\(what) skipped: \(error)"))
        }
    }

    private static func metadata(_ r: TreeReader) throws(FieldError) -> (name: String, namespace: String?, labels: [String: String]) {
        guard let m = try r.object("metadata") else { throw FieldError("metadata", "missing") }
        return (try m.requiredString("name"), try m.string("namespace"), try m.stringMap("labels"))
    }

    static func node(_ r: TreeReader) throws(FieldError) -> ClusterNode {
        let meta = try metadata(r)
        var cidrs: [IPNetwork] = []
        if let spec = try r.object("spec") {
            for (i, s) in try spec.strings("podCIDRs").enumerated() {
                cidrs.append(try TreeReader.network(s, path: spec.path(of: "podCIDRs") + "[\(i)]", networkOnly: false).network)
            }
            if cidrs.isEmpty, let single = try spec.network("podCIDR", networkOnly: false) {
                cidrs = [single.network]
            }
        }
        var ips: [IPAddress] = []
        if let status = try r.object("status") {
            for a in try status.objects("addresses") where try a.string("type") == "InternalIP" {
                if let ip = try a.address("address") { ips.append(ip) }
            }
        }
        return ClusterNode(name: meta.name, podCIDRs: cidrs, internalIPs: ips, labels: meta.labels)
    }

    static func namespace(_ r: TreeReader) throws(FieldError) -> ClusterNamespace {
        let meta = try metadata(r)
        return ClusterNamespace(name: meta.name, labels: meta.labels)
    }

    static func pod(_ r: TreeReader) throws(FieldError) -> ClusterPod {
        let meta = try metadata(r)
        var pod = ClusterPod(namespace: meta.namespace ?? "default", name: meta.name, labels: meta.labels)
        if let spec = try r.object("spec") {
            pod.nodeName = try spec.string("nodeName")
            pod.hostNetwork = try spec.bool("hostNetwork") ?? false
            for container in try spec.objects("containers") {
                for p in try container.objects("ports") {
                    guard let number = try p.integer("containerPort") else {
                        throw FieldError(p.path(of: "containerPort"), "missing")
                    }
                    guard (1...65535).contains(number) else {
                        throw FieldError(p.path(of: "containerPort"), "\(number) is not a port (1 to 65535)")
                    }
                    var proto = ContainerPort.ProtocolName.tcp
                    if let text = try p.string("protocol") {
                        guard let v = ContainerPort.ProtocolName(rawValue: text) else {
                            throw FieldError(p.path(of: "protocol"), "\"\(text)\" is not TCP, UDP or SCTP")
                        }
                        proto = v
                    }
                    pod.ports.append(ContainerPort(name: try p.string("name"), containerPort: number, protocol: proto))
                }
            }
        }
        if let status = try r.object("status") {
            for entry in try status.objects("podIPs") {
                if let ip = try entry.address("ip") { pod.podIPs.append(ip) }
            }
            if pod.podIPs.isEmpty, let ip = try status.address("podIP") { pod.podIPs = [ip] }
            pod.hostIP = try status.address("hostIP")
            pod.phase = try status.string("phase")
        }
        return pod
    }
}

extension ManifestParser {
    /// The addresses of a Service that kube-proxy translates: `spec.clusterIPs` (or
    /// `spec.clusterIP`; "None" for a headless Service is no address), `spec.externalIPs`,
    /// `status.loadBalancer.ingress[].ip`.
    static func service(_ r: TreeReader) throws(FieldError) -> ClusterService {
        let meta = try metadata(r)
        var service = ClusterService(namespace: meta.namespace ?? "default", name: meta.name)
        var texts: [(String, String)] = []
        if let spec = try r.object("spec") {
            let clusterIPs = try spec.strings("clusterIPs")
            texts += clusterIPs.enumerated().map { ($1, spec.path(of: "clusterIPs") + "[\($0)]") }
            if clusterIPs.isEmpty, let one = try spec.string("clusterIP") { texts.append((one, spec.path(of: "clusterIP"))) }
            texts += try spec.strings("externalIPs").enumerated().map { ($1, spec.path(of: "externalIPs") + "[\($0)]") }
        }
        if let status = try r.object("status"), let lb = try status.object("loadBalancer") {
            for ingress in try lb.objects("ingress") {
                if let ip = try ingress.string("ip") { texts.append((ip, ingress.path(of: "ip"))) }
            }
        }
        for (text, path) in texts where !text.isEmpty && text != "None" {
            guard let ip = IPAddress(text) else { throw FieldError(path, "\"\(text)\" is not an IP address") }
            if !service.addresses.contains(ip) { service.addresses.append(ip) }
        }
        return service
    }
}
