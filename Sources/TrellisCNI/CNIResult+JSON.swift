import TrellisNet

/// The result's wire forms. The versions differ in few places: 0.3.1 and 0.4.0 tag each IP with
/// `"version": "4"|"6"`, 1.0.0 dropped that, and 1.1.0 added interface `mtu`/`socketPath`/
/// `pciID` and the route attributes. Reading is lenient (newer fields are accepted in any
/// version); writing is exact, because a strict runtime of an older version may reject a key
/// it does not know.
extension CNIResult {
    public func json(version: String) throws(CNIError) -> [UInt8] {
        try Self.requireSupported(version)
        let isLegacy = !CNIVersionInfo.atLeast(version, "1.0.0")
        let is11 = CNIVersionInfo.atLeast(version, "1.1.0")

        let interfaces = interfaces.map { i in
            JSONValue.object([
                ("name", .string(i.name)),
                ("mac", i.mac.map { .string($0) }),
                ("mtu", is11 ? i.mtu.map { .int($0) } : nil),
                ("sandbox", i.sandbox.map { .string($0) }),
                ("socketPath", is11 ? i.socketPath.map { .string($0) } : nil),
                ("pciID", is11 ? i.pciID.map { .string($0) } : nil),
            ])
        }
        let ips = ips.map { ip in
            JSONValue.object([
                ("version", isLegacy ? .string(ip.address.family == .v4 ? "4" : "6") : nil),
                ("address", .string(ip.address.description)),
                ("gateway", ip.gateway.map { .string($0.description) }),
                ("interface", ip.interface.map { .int($0) }),
            ])
        }
        let routes = routes.map { r in
            JSONValue.object([
                ("dst", .string(r.dst.description)),
                ("gw", r.gw.map { .string($0.description) }),
                ("mtu", is11 ? r.mtu.map { .int($0) } : nil),
                ("advmss", is11 ? r.advmss.map { .int($0) } : nil),
                ("priority", is11 ? r.priority.map { .int($0) } : nil),
                ("table", is11 ? r.table.map { .int($0) } : nil),
                ("scope", is11 ? r.scope.map { .int($0) } : nil),
            ])
        }
        func nonEmpty(_ list: [String]?) -> JSONValue? {
            guard let list, !list.isEmpty else { return nil }
            return .strings(list)
        }
        let dns = JSONValue.object([
            ("nameservers", nonEmpty(dns.nameservers)),
            ("domain", dns.domain.flatMap { $0.isEmpty ? nil : .string($0) }),
            ("search", nonEmpty(dns.search)),
            ("options", nonEmpty(dns.options)),
        ])
        // Empty lists are left out, as libcni's `omitempty` does.
        return JSONValue.object([
            ("cniVersion", .string(version)),
            ("interfaces", interfaces.isEmpty ? nil : .array(interfaces)),
            ("ips", ips.isEmpty ? nil : .array(ips)),
            ("routes", routes.isEmpty ? nil : .array(routes)),
            ("dns", self.dns.isEmpty ? nil : dns),
        ]).data
    }

    /// Reads a result written in `version`. The result's own `cniVersion` key is not
    /// consulted: the spec has a `prevResult` in the version of the config that carries it.
    public static func decode(_ data: [UInt8], version: String) throws(CNIError) -> CNIResult {
        try requireSupported(version)
        return try decode(JSONValue.parse(data, what: "result"), version: version, path: "")
    }

    /// Every failure is code 6 (decode failure) naming the path below `path`.
    static func decode(_ value: JSONValue, version: String, path: String) throws(CNIError) -> CNIResult {
        try requireSupported(version)
        guard case .object = value else {
            throw .decodeFailure("\(path.isEmpty ? "result" : path): expected a JSON object, got \(value.brief)")
        }
        let top = try JSONObjectReader(value, path: path, errorCode: 6)
        let isLegacy = !CNIVersionInfo.atLeast(version, "1.0.0")

        var result = CNIResult()
        for entry in try top.objects("interfaces") ?? [] {
            result.interfaces.append(Interface(
                name: try entry.requiredString("name"), mac: try entry.string("mac"),
                mtu: try entry.int("mtu"), sandbox: try entry.string("sandbox"),
                socketPath: try entry.string("socketPath"), pciID: try entry.string("pciID")))
        }
        for entry in try top.objects("ips") ?? [] {
            let address = try entry.requiredNetwork("address")
            let gateway = try entry.address("gateway")
            if let gateway, gateway.family != address.family {
                throw entry.error("gateway", "\(gateway) is not in the address family of \(address)")
            }
            let index = try entry.int("interface")
            if let index, !result.interfaces.indices.contains(index) {
                throw entry.error("interface", "\(index) is not an index into interfaces "
                    + "(\(result.interfaces.count) of them)")
            }
            if isLegacy, let tag = try entry.string("version") {
                let expected = address.family == .v4 ? "4" : "6"
                guard tag == expected else {
                    throw entry.error("version", "\"\(tag)\" does not match the address \(address) (expected \"\(expected)\")")
                }
            }
            result.ips.append(IPConfig(address: address, gateway: gateway, interface: index))
        }
        for entry in try top.objects("routes") ?? [] {
            let dst = try entry.requiredNetwork("dst")
            let gw = try entry.address("gw")
            if let gw, gw.family != dst.family {
                throw entry.error("gw", "\(gw) is not in the address family of \(dst)")
            }
            result.routes.append(Route(
                dst: dst, gw: gw, mtu: try entry.int("mtu"), advmss: try entry.int("advmss"),
                priority: try entry.int("priority"), table: try entry.int("table"),
                scope: try entry.int("scope")))
        }
        if let dns = try top.object("dns") {
            result.dns = DNS(nameservers: try dns.stringArray("nameservers"), domain: try dns.string("domain"),
                             search: try dns.stringArray("search"), options: try dns.stringArray("options"))
        }
        return result
    }

    private static func requireSupported(_ version: String) throws(CNIError) {
        guard CNIVersionInfo.isSupported(version) else {
            throw .incompatibleVersion("cniVersion \"\(version)\" is not supported; supported versions: "
                + CNIVersionInfo.supported.joined(separator: ", "))
        }
    }
}
