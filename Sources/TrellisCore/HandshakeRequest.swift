import TrellisJSON
import TrellisNet

/// What the CNI plugin asks of the agent over its socket (docs/agent.md): one JSON line per
/// connection, answered by one `HandshakeReply` line. The plugin encodes these with `json`,
/// the agent decodes them with `decode`: one definition of the protocol for both sides.
public enum HandshakeRequest: Sendable, Equatable {
    /// ADD: program the datapath of a new pod interface; the pod starts only once it is done.
    case add(AddRequest)
    /// DEL: forget a pod interface (best effort: the agent also sweeps vanished veths).
    case del(DelRequest)
    /// STATUS: is the agent ready to take ADDs?
    case status

    /// The `op` of each request, in the order the errors list them.
    public static let operations = ["add", "del", "status"]

    /// Who the pod is, its host veth, its MACs and addresses.
    public struct AddRequest: Sendable, Equatable {
        public var containerID: String
        public var ifname: String
        public var netns: String?
        /// K8S_POD_NAMESPACE and K8S_POD_NAME of CNI_ARGS: without them no policy can apply.
        public var podNamespace: String?
        public var podName: String?
        public var hostIfname: String
        public var hostIfindex: Int32
        public var hostMAC: MACAddress
        public var podMAC: MACAddress
        /// The pod's addresses, sent as host prefixes (`10.244.1.5/32`): entries are per IP.
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

        /// The datapath's entry for each of the pod's addresses, once the agent knows its policy.
        public func entry(identity: UInt32, policyID: UInt32) -> EndpointEntry {
            EndpointEntry(hostIfindex: hostIfindex, podMAC: podMAC, hostMAC: hostMAC, identity: identity, policyID: policyID)
        }
    }

    public struct DelRequest: Sendable, Equatable {
        public var containerID: String
        public var ifname: String
        /// Finds the endpoint when the agent does not know the container (adopted after a restart).
        public var hostIfname: String?

        public init(containerID: String, ifname: String, hostIfname: String? = nil) {
            self.containerID = containerID
            self.ifname = ifname
            self.hostIfname = hostIfname
        }
    }

    public var op: String {
        switch self {
        case .add: "add"
        case .del: "del"
        case .status: "status"
        }
    }
}

// MARK: - Encoding

extension HandshakeRequest {
    public var json: JSONValue {
        switch self {
        case .status:
            return .object([("op", .string(op))])
        case .del(let d):
            return .object([
                ("op", .string(op)), ("containerID", .string(d.containerID)), ("ifname", .string(d.ifname)),
                ("hostIfname", d.hostIfname.map(JSONValue.string)),
            ])
        case .add(let a):
            return .object([
                ("op", .string(op)),
                ("containerID", .string(a.containerID)),
                ("ifname", .string(a.ifname)),
                ("netns", a.netns.map(JSONValue.string)),
                ("podNamespace", a.podNamespace.map(JSONValue.string)),
                ("podName", a.podName.map(JSONValue.string)),
                ("hostIfname", .string(a.hostIfname)),
                ("hostIfindex", .int(Int(a.hostIfindex))),
                ("hostMAC", .string(a.hostMAC.description)),
                ("podMAC", .string(a.podMAC.description)),
                ("ips", .strings(a.ips.map { IPNetwork(address: $0, prefixLength: $0.bitWidth)!.description })),
            ])
        }
    }

    /// The request as it goes on the socket: JSON and a newline.
    public var line: [UInt8] { json.bytes + [0x0A] }
}

// MARK: - Decoding

extension HandshakeRequest {
    /// One request line as the agent's socket reads it: a handshake request, or another
    /// operation the caller serves itself (the agent's local API), with its document.
    public enum Decoded: Sendable, Equatable {
        case handshake(HandshakeRequest)
        case other(op: String, document: JSONValue)
    }

    /// Decodes one request line; the error names the field and what is wrong with it.
    /// `otherOperations` are passed through as `.other` (and named in the error for an unknown
    /// `op`); any other `op` is an error.
    public static func decode(_ line: [UInt8], otherOperations: [String] = []) throws(FieldError) -> Decoded {
        let document: JSONValue
        do { document = try JSONValue.parse(line) } catch {
            throw FieldError("", "request is not JSON: \(error)")
        }
        let r = try TreeReader(document)
        guard let op = try r.string("op") else { throw FieldError("op", "missing") }
        switch op {
        case "status":
            return .handshake(.status)
        case "del":
            return .handshake(.del(DelRequest(containerID: try r.requiredString("containerID"),
                                              ifname: try r.requiredString("ifname"),
                                              hostIfname: try r.string("hostIfname"))))
        case "add":
            return .handshake(.add(try addRequest(r)))
        case _ where otherOperations.contains(op):
            return .other(op: op, document: document)
        default:
            let known = operations + otherOperations
            let list = known.count > 1 ? known.dropLast().joined(separator: ", ") + " or " + known.last! : known.joined()
            throw FieldError("op", "\"\(op)\" is not an operation (\(list))")
        }
    }

    private static func addRequest(_ r: TreeReader) throws(FieldError) -> AddRequest {
        guard let index = try r.integer("hostIfindex") else { throw FieldError("hostIfindex", "missing") }
        guard index > 0, index <= Int(Int32.max) else {
            throw FieldError("hostIfindex", "\(index) is not an interface index")
        }
        guard let items = try r.array("ips"), !items.isEmpty else { throw FieldError("ips", "missing or empty") }
        var ips: [IPAddress] = []
        for (i, item) in items.enumerated() {
            guard case .string(let text) = item else {
                throw FieldError("ips[\(i)]", "expected a string, got \(item.brief)")
            }
            guard let ip = IPNetwork(text)?.address ?? IPAddress(text) else {
                throw FieldError("ips[\(i)]", "\"\(text)\" is not an address (10.244.1.5/32 or fd00::5/128)")
            }
            guard !ips.contains(ip) else { throw FieldError("ips[\(i)]", "\(ip) is listed twice") }
            ips.append(ip)
        }
        return AddRequest(
            containerID: try r.requiredString("containerID"),
            ifname: try r.requiredString("ifname"),
            netns: try r.string("netns"),
            podNamespace: try r.string("podNamespace"),
            podName: try r.string("podName"),
            hostIfname: try r.requiredString("hostIfname"),
            hostIfindex: Int32(index),
            hostMAC: try r.mac("hostMAC"),
            podMAC: try r.mac("podMAC"),
            ips: ips)
    }
}
