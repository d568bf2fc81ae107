import TrellisJSON
import TrellisNet
import TrellisPolicy

/// A request on the agent's socket (docs/agent.md), checked field by field: the CNI handshake
/// (`add`, `del`, `status`) and the operator's local API (`agent`, `explain`, `monitor`),
/// which `trellisctl` speaks.
public enum HandshakeRequest: Sendable, Equatable {
    case add(AddRequest)
    case del(DelRequest)
    case status
    /// The agent's state: readiness, revision, counts, local endpoints and their policy.
    case agentStatus
    /// The policy verdict for one connection.
    case explain(ExplainRequest)
    /// Stream drop events until the client goes.
    case monitor(MonitorFilter)

    public struct AddRequest: Sendable, Equatable {
        public var containerID: String
        public var ifname: String
        public var netns: String?
        public var podNamespace: String?
        public var podName: String?
        public var hostIfname: String
        public var hostIfindex: Int32
        public var hostMAC: MACAddress
        public var podMAC: MACAddress
        /// The pod's addresses (the prefix length of the request is not kept: entries are per IP).
        public var ips: [IPAddress]

        public init(containerID: String, ifname: String, netns: String? = nil, podNamespace: String? = nil,
                    podName: String? = nil, hostIfname: String, hostIfindex: Int32, hostMAC: MACAddress,
                    podMAC: MACAddress, ips: [IPAddress]) {
            self.containerID = containerID
            self.ifname = ifname
            self.netns = netns
            self.podNamespace = podNamespace
            self.podName = podName
            self.hostIfname = hostIfname
            self.hostIfindex = hostIfindex
            self.hostMAC = hostMAC
            self.podMAC = podMAC
            self.ips = ips
        }
    }

    public struct DelRequest: Sendable, Equatable {
        public var containerID: String
        public var ifname: String
        public var hostIfname: String?

        public init(containerID: String, ifname: String, hostIfname: String? = nil) {
            self.containerID = containerID
            self.ifname = ifname
            self.hostIfname = hostIfname
        }
    }

    /// Parses one request line; the error names the field and what is wrong with it.
    public static func parse(_ line: [UInt8]) throws(FieldError) -> HandshakeRequest {
        let doc: JSONValue
        do { doc = try JSONValue.parse(line) } catch {
            throw FieldError("", "request is not JSON: \(error)")
        }
        let r = try TreeReader(doc, path: "")
        guard let op = try r.string("op") else { throw FieldError("op", "missing") }
        switch op {
        case "status":
            return .status
        case "agent":
            return .agentStatus
        case "explain":
            return .explain(try ExplainRequest(r))
        case "monitor":
            return .monitor(try MonitorFilter(r))
        case "del":
            return .del(DelRequest(containerID: try r.requiredString("containerID"),
                                   ifname: try r.requiredString("ifname"),
                                   hostIfname: try r.string("hostIfname")))
        case "add":
            let index = try r.integer("hostIfindex")
            guard let index else { throw FieldError("hostIfindex", "missing") }
            guard index > 0, index <= Int(Int32.max) else {
                throw FieldError("hostIfindex", "\(index) is not an interface index")
            }
            guard let ipTexts = try r.array("ips"), !ipTexts.isEmpty else { throw FieldError("ips", "missing or empty") }
            var ips: [IPAddress] = []
            for (i, item) in ipTexts.enumerated() {
                guard case .string(let text) = item else {
                    throw FieldError("ips[\(i)]", "expected a string, got \(item.brief)")
                }
                guard let ip = IPNetwork(text)?.address ?? IPAddress(text) else {
                    throw FieldError("ips[\(i)]", "\"\(text)\" is not an address (10.244.1.5/32 or fd00::5/128)")
                }
                guard !ips.contains(ip) else { throw FieldError("ips[\(i)]", "\(ip) is listed twice") }
                ips.append(ip)
            }
            return .add(AddRequest(
                containerID: try r.requiredString("containerID"),
                ifname: try r.requiredString("ifname"),
                netns: try r.string("netns"),
                podNamespace: try r.string("podNamespace"),
                podName: try r.string("podName"),
                hostIfname: try r.requiredString("hostIfname"),
                hostIfindex: Int32(index),
                hostMAC: try mac(r, "hostMAC"),
                podMAC: try mac(r, "podMAC"),
                ips: ips))
        default:
            throw FieldError("op", "\"\(op)\" is not an operation (add, del, status, agent, explain or monitor)")
        }
    }

    private static func mac(_ r: TreeReader, _ key: String) throws(FieldError) -> MACAddress {
        let text = try r.requiredString(key)
        guard let m = MACAddress(text) else { throw FieldError(key, "\"\(text)\" is not a MAC address (aa:bb:cc:dd:ee:ff)") }
        return m
    }
}

/// An answer line of the handshake.
public enum HandshakeAnswer: Sendable, Equatable {
    case ok
    case status(ready: Bool)
    case failure(String)
    /// `{"ok":true, ...members}`: the local API's answers.
    case document([JSONMember])

    public var json: JSONValue {
        switch self {
        case .ok: .object([("ok", .bool(true))])
        case .status(let ready): .object([("ok", .bool(true)), ("ready", .bool(ready))])
        case .failure(let why): .object([("ok", .bool(false)), ("error", .string(why))])
        case .document(let members): .object([JSONMember(key: "ok", value: .bool(true))] + members)
        }
    }

    public var line: [UInt8] { json.bytes + [0x0A] }
}
