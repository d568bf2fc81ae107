import TrellisCore
import TrellisNet

extension NetConf {
    /// Parses and validates the config the runtime wrote on stdin.
    ///
    /// Codes: 6 when the bytes are not JSON (or `prevResult` is not a result), 1 for a
    /// `cniVersion` we do not speak, 2 for a feature we do not have (`mode`, a delegated
    /// `ipam.type`), 7 for anything else missing or wrong. Keys we do not know are ignored:
    /// runtimes add `runtimeConfig`, `args` and friends to every plugin of a chain.
    public static func parse(_ data: [UInt8]) throws(CNIError) -> NetConf {
        let document = try JSONValue.parse(data, what: "network configuration")
        guard case .object = document else {
            throw .decodeFailure("network configuration: expected a JSON object, got \(document.brief)")
        }
        let top = try JSONObjectReader(document, path: "", errorCode: 7)

        // First, because the version decides how the rest (prevResult) is read.
        let cniVersion = try top.requiredString("cniVersion")
        guard CNIVersionInfo.isSupported(cniVersion) else {
            throw .incompatibleVersion("cniVersion: \"\(cniVersion)\" is not supported; supported versions: "
                + CNIVersionInfo.supported.joined(separator: ", "))
        }

        let name = try top.requiredString("name")
        if let problem = NameRules.identifierProblem(name) {
            throw top.invalid("name", name, "a network name \(problem)")
        }
        // Read only to reject a non-string: the runtime already chose us by this key.
        _ = try top.string("type")

        let mode = try parseMode(top)
        let bridgeName = try interfaceName(top, "bridge") ?? defaultBridgeName
        let hostDevice = try interfaceName(top, "hostDevice") ?? defaultHostDevice

        let ipam = try top.requiredObject("ipam")
        if let type = try ipam.string("type"), type != ipamType {
            throw .unsupportedField("\(ipam.path(of: "type")): \"\(type)\" is not supported: trellis allocates "
                + "addresses itself; omit ipam.type or set it to \"\(ipamType)\"")
        }
        let ranges = try parseRanges(ipam)
        let reserved = try parseReserved(ipam)
        let dataDir = try absolutePath(ipam, "dataDir") ?? defaultDataDir

        let mtu = try parseMTU(top, ranges: ranges)
        let agentSocket = try absolutePath(top, "agentSocket")

        var prevResult: CNIResult?
        if let raw = top["prevResult"] {
            prevResult = try CNIResult.decode(raw, version: cniVersion, path: "prevResult")
        }

        return NetConf(cniVersion: cniVersion, name: name, mode: mode, bridgeName: bridgeName,
                       hostDevice: hostDevice, mtu: mtu, ranges: ranges, reserved: reserved,
                       dataDir: dataDir, agentSocket: agentSocket, prevResult: prevResult,
                       validAttachments: try parseValidAttachments(top))
    }

    private static func parseMode(_ top: JSONObjectReader) throws(CNIError) -> DatapathMode {
        guard let raw = try top.string("mode") else { return .bridge }
        guard let mode = DatapathMode(rawValue: raw) else {
            throw .unsupportedField("mode: \"\(raw)\" is not supported (supported modes: \(DatapathMode.allowedValues))")
        }
        return mode
    }

    private static func interfaceName(_ object: JSONObjectReader, _ key: String) throws(CNIError) -> String? {
        guard let name = try object.string(key) else { return nil }
        if let problem = NameRules.interfaceNameProblem(name) {
            throw object.invalid(key, name, "an interface name \(problem)")
        }
        return name
    }

    /// Relative paths would resolve against whatever directory the runtime started us in.
    private static func absolutePath(_ object: JSONObjectReader, _ key: String) throws(CNIError) -> String? {
        guard let path = try object.string(key) else { return nil }
        guard path.hasPrefix("/") else { throw object.error(key, "\"\(path)\" is not an absolute path") }
        return path
    }

    private static func parseMTU(_ top: JSONObjectReader, ranges: [IPRange]) throws(CNIError) -> Int {
        guard let mtu = try top.int("mtu") else {
            return defaultMTU
        }
        guard (minimumMTU...maximumMTU).contains(mtu) else {
            throw top.error("mtu", "\(mtu) is outside \(minimumMTU)...\(maximumMTU)")
        }
        if mtu < minimumIPv6MTU, let v6 = ranges.first(where: { $0.family == .v6 }) {
            throw top.error("mtu", "\(mtu) is below \(minimumIPv6MTU), the IPv6 minimum, and the IPv6 range "
                + "\(v6.subnet) is configured")
        }
        return mtu
    }

    private static func parseRanges(_ ipam: JSONObjectReader) throws(CNIError) -> [IPRange] {
        guard let entries = try ipam.objects("ranges") else {
            throw ipam.error("ranges", "required, but missing")
        }
        guard !entries.isEmpty else { throw ipam.error("ranges", "at least one range is required") }
        var ranges: [IPRange] = []
        for entry in entries {
            let range = try parseRange(entry)
            if let other = ranges.first(where: { $0.family == range.family }) {
                throw CNIError.invalidConfig("\(entry.path): a second \(familyName(range.family)) range "
                    + "(\(range.subnet), after \(other.subnet)); at most one IPv4 and one IPv6 range are allowed")
            }
            ranges.append(range)
        }
        return ranges
    }

    private static func parseRange(_ entry: JSONObjectReader) throws(CNIError) -> IPRange {
        let subnet = try entry.requiredNetwork("subnet", meaning: "a subnet (ADDR/LEN)").network
        // Network address, gateway and (IPv4) broadcast must leave at least one address to hand out.
        let maxPrefix = subnet.family == .v4 ? 30 : 126
        guard subnet.prefixLength <= maxPrefix else {
            throw entry.error("subnet", "\(subnet) is too small: the prefix can be at most /\(maxPrefix) "
                + "for \(familyName(subnet.family)) to leave room for a gateway and pods")
        }
        let firstUsable = subnet.first.advanced(by: 1)!
        // The IPv4 broadcast address cannot be assigned; IPv6 has no broadcast.
        let lastUsable = subnet.family == .v4 ? subnet.last.advanced(by: -1)! : subnet.last

        func address(_ key: String) throws(CNIError) -> IPAddress? {
            guard let a = try entry.address(key) else { return nil }
            guard a.family == subnet.family else {
                throw entry.error(key, "\(a) is \(familyName(a.family)) but the subnet \(subnet) is "
                    + familyName(subnet.family))
            }
            guard subnet.contains(a) else { throw entry.error(key, "\(a) is outside the subnet \(subnet)") }
            if a == subnet.first { throw entry.error(key, "\(a) is the network address of \(subnet)") }
            if a > lastUsable { throw entry.error(key, "\(a) is the broadcast address of \(subnet)") }
            return a
        }

        let rangeStart = try address("rangeStart") ?? firstUsable
        let rangeEnd = try address("rangeEnd") ?? lastUsable
        // The agent writes its ranges without a gateway and expects this very rule.
        let gateway = try address("gateway") ?? subnet.defaultGateway!
        guard rangeStart <= rangeEnd else {
            throw CNIError.invalidConfig("\(entry.path): rangeStart \(rangeStart) is after rangeEnd \(rangeEnd)")
        }
        return IPRange(subnet: subnet, rangeStart: rangeStart, rangeEnd: rangeEnd, gateway: gateway)
    }

    private static func parseReserved(_ ipam: JSONObjectReader) throws(CNIError) -> [IPNetwork] {
        guard let entries = try ipam.stringArray("reserved") else { return [] }
        var out: [IPNetwork] = []
        for (i, text) in entries.enumerated() {
            if let address = IPAddress(text) {
                out.append(IPNetwork(address: address, prefixLength: address.bitWidth)!)
            } else if let network = IPNetwork(text) {
                out.append(network.network)
            } else {
                throw CNIError.invalidConfig("\(ipam.path(of: "reserved"))[\(i)]: \"\(text)\" is not an address "
                    + "or subnet (ADDR or ADDR/LEN)")
            }
        }
        return out
    }

    static let validAttachmentsKey = "cni.dev/valid-attachments"

    private static func parseValidAttachments(_ top: JSONObjectReader) throws(CNIError) -> [Attachment]? {
        guard let entries = try top.objects(validAttachmentsKey) else { return nil }
        var out: [Attachment] = []
        for entry in entries {
            out.append(Attachment(containerID: try entry.requiredString("containerID"),
                                  ifname: try entry.requiredString("ifname")))
        }
        return out
    }

    private static func familyName(_ family: IPAddress.Family) -> String {
        family == .v4 ? "IPv4" : "IPv6"
    }
}
