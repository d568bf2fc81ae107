import Foundation
import Logging
import TrellisCore
import TrellisJSON
import TrellisNet

/// The agent's configuration (docs/agent.md), every default resolved and every value checked.
public struct AgentConfig: Sendable, Equatable {
    public enum Source: String, Sendable, CaseIterable, Equatable {
        case manifests
        case kubernetes
    }

    /// `host:port` the health server listens on.
    public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
        public var host: IPAddress
        public var port: UInt16

        public init(host: IPAddress, port: UInt16) {
            self.host = host
            self.port = port
        }

        /// `127.0.0.1:9876`, `[::1]:9876`, `0.0.0.0:9876`; nil for anything else.
        public init?(_ text: String) {
            let hostText: Substring, portText: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
                hostText = text[text.index(after: text.startIndex)..<close]
                portText = text[text.index(close, offsetBy: 2)...]
            } else {
                guard let colon = text.lastIndex(of: ":") else { return nil }
                hostText = text[..<colon]
                portText = text[text.index(after: colon)...]
                if hostText.contains(":") { return nil }  // IPv6 needs brackets
            }
            guard let host = IPAddress(hostText), let port = UInt16(portText), String(port) == portText else { return nil }
            self.init(host: host, port: port)
        }

        public var description: String { host.family == .v6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public var nodeName: String
    public var source: Source
    public var manifestsDir: String
    /// `kubernetes` source: a kubeconfig for use outside the cluster; empty: the pod's service
    /// account (in-cluster).
    public var kubeconfig: String
    /// Where the compiled `*.bpf.o` files are; nil: the folder of the agent binary, then
    /// `/usr/lib/trellis/bpf` (see `bpfObjectSearchPath`).
    public var bpfObjectDir: String?
    public var bpffsDir: String
    public var socketPath: String
    public var cniConfDir: String
    public var cniConfName: String
    public var ipamDataDir: String
    public var underlayDevice: String
    /// The veth the node's stack routes the other nodes' pod CIDRs into (created by the agent).
    public var overlayDevice: String
    public var datapathMode: DatapathMode
    public var vni: UInt32
    /// 0: underlay MTU minus `geneveOverhead`.
    public var mtu: Int
    /// Destinations that are not masqueraded; empty: the pod CIDRs of all Nodes.
    public var clusterCIDRs: [IPNetwork]
    public var masquerade: Bool
    public var healthAddress: ListenAddress
    public var logLevel: Logger.Level

    /// Outer IPv4 20 + UDP 8 + Geneve 8 + inner Ethernet 14.
    public static let geneveOverhead = 50
    public static let maxVNI: UInt32 = 0xFF_FFFF
    public static let installedBPFObjectDir = "/usr/lib/trellis/bpf"

    /// Every default of docs/agent.md; `nodeName` is this host's name, lower-cased as kubelet
    /// registers it.
    public static var defaults: AgentConfig {
        AgentConfig(
            nodeName: Posix.hostname().lowercased(),
            source: .manifests,
            manifestsDir: "/etc/trellis/manifests",
            kubeconfig: "",
            bpfObjectDir: nil,
            bpffsDir: "/sys/fs/bpf/trellis",
            socketPath: "/run/trellis/agent.sock",
            cniConfDir: "/etc/cni/net.d",
            cniConfName: "10-trellis.conflist",
            ipamDataDir: "/var/lib/cni/trellis",
            underlayDevice: "eth0",
            overlayDevice: "trellis_ovl",
            datapathMode: .ebpf,
            vni: 1,
            mtu: 0,
            clusterCIDRs: [],
            masquerade: true,
            healthAddress: ListenAddress(host: .v4(0x7F00_0001), port: 9876),
            logLevel: .info)
    }

    public init(nodeName: String, source: Source, manifestsDir: String, kubeconfig: String = "", bpfObjectDir: String?,
                bpffsDir: String, socketPath: String, cniConfDir: String, cniConfName: String,
                ipamDataDir: String, underlayDevice: String, overlayDevice: String = "trellis_ovl",
                datapathMode: DatapathMode, vni: UInt32,
                mtu: Int, clusterCIDRs: [IPNetwork], masquerade: Bool, healthAddress: ListenAddress,
                logLevel: Logger.Level) {
        self.nodeName = nodeName
        self.source = source
        self.manifestsDir = manifestsDir
        self.kubeconfig = kubeconfig
        self.bpfObjectDir = bpfObjectDir
        self.bpffsDir = bpffsDir
        self.socketPath = socketPath
        self.cniConfDir = cniConfDir
        self.cniConfName = cniConfName
        self.ipamDataDir = ipamDataDir
        self.underlayDevice = underlayDevice
        self.overlayDevice = overlayDevice
        self.datapathMode = datapathMode
        self.vni = vni
        self.mtu = mtu
        self.clusterCIDRs = clusterCIDRs
        self.masquerade = masquerade
        self.healthAddress = healthAddress
        self.logLevel = logLevel
    }

    /// The folders searched for `*.bpf.o`, in order.
    public var bpfObjectSearchPath: [String] {
        if let bpfObjectDir { return [bpfObjectDir] }
        var dirs: [String] = []
        if let exe = Posix.executablePath() {
            dirs.append((exe as NSString).deletingLastPathComponent)
        }
        dirs.append(Self.installedBPFObjectDir)
        return dirs
    }

    /// The conflist's full path.
    public var conflistPath: String { cniConfDir + "/" + cniConfName }

    /// The pod MTU for an underlay device of `underlayMTU`.
    public func podMTU(underlayMTU: Int) -> Int {
        mtu != 0 ? mtu : underlayMTU - Self.geneveOverhead
    }
}

// MARK: - Reading

/// A configuration that cannot be used, naming the key and the value.
public struct AgentConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The config file, when the config came from one.
    public var file: String?
    public let key: String
    public let message: String

    public init(file: String? = nil, key: String, message: String) {
        self.file = file
        self.key = key
        self.message = message
    }

    public var description: String {
        let where_ = file.map { "config \($0): " } ?? "config: "
        return key.isEmpty ? where_ + message : where_ + "\(key): \(message)"
    }
}

extension AgentConfig {
    /// Every key of docs/agent.md, in its order.
    public static let keys = [
        "nodeName", "source", "manifestsDir", "kubeconfig", "bpfObjectDir", "bpffsDir", "socketPath", "cniConfDir",
        "cniConfName", "ipamDataDir", "underlayDevice", "overlayDevice", "datapathMode", "vni", "mtu", "clusterCIDRs",
        "masquerade", "healthAddress", "logLevel",
    ]

    /// Reads a config file.
    public static func load(path: String) throws(AgentConfigError) -> AgentConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw AgentConfigError(file: path, key: "", message: "cannot be read: \((error as NSError).localizedDescription)")
        }
        do {
            return try parse(yaml: text)
        } catch {
            var e = error
            e.file = path
            throw e
        }
    }

    /// Parses YAML config text. An empty text gives the defaults. Unknown keys are errors: a
    /// misspelt key silently falling back to its default is the worst kind of config bug.
    public static func parse(yaml text: String) throws(AgentConfigError) -> AgentConfig {
        let tree: JSONValue
        do { tree = try YAMLTree.document(text) } catch {
            throw AgentConfigError(key: "", message: "not valid YAML: \(error)")
        }
        if tree == .null { return defaults }
        do {
            return try parse(TreeReader(tree))
        } catch {
            throw AgentConfigError(key: error.path, message: error.message)
        }
    }

    private static func parse(_ r: TreeReader) throws(FieldError) -> AgentConfig {
        if let unknown = r.keys.first(where: { !keys.contains($0) }) {
            let hint = keys.first { $0.lowercased() == unknown.lowercased() }.map { "; did you mean \($0)?" } ?? ""
            throw FieldError(unknown, "unknown key\(hint) (known keys: \(keys.joined(separator: ", ")))")
        }
        var c = defaults

        if let name = try r.string("nodeName") {
            if let problem = nodeNameProblem(name) { throw FieldError("nodeName", "\"\(name)\" \(problem)") }
            c.nodeName = name
        }
        if let s = try r.string("source") {
            guard let v = Source(rawValue: s) else {
                throw FieldError("source", "\"\(s)\" is not a source; use manifests or kubernetes")
            }
            c.source = v
        }
        c.manifestsDir = try absolutePath(r, "manifestsDir") ?? c.manifestsDir
        if let k = try r.string("kubeconfig") {
            guard k.isEmpty || k.hasPrefix("/") else {
                throw FieldError("kubeconfig", "\"\(k)\" is not an absolute path (or empty, for in-cluster credentials)")
            }
            c.kubeconfig = k
        }
        c.bpfObjectDir = try absolutePath(r, "bpfObjectDir") ?? c.bpfObjectDir
        c.bpffsDir = try absolutePath(r, "bpffsDir") ?? c.bpffsDir
        if let p = try absolutePath(r, "socketPath") {
            guard UnixSocketAddress(path: p) != nil else {
                throw FieldError("socketPath", "\"\(p)\" is \(p.utf8.count) bytes; a unix socket path has at most \(UnixSocketAddress.maxPathBytes)")
            }
            c.socketPath = p
        }
        c.cniConfDir = try absolutePath(r, "cniConfDir") ?? c.cniConfDir
        if let n = try r.string("cniConfName") {
            guard !n.isEmpty, !n.contains("/"), !n.hasPrefix("."), n.hasSuffix(".conflist") || n.hasSuffix(".json") else {
                throw FieldError("cniConfName", "\"\(n)\" is not a conflist file name (a name ending in .conflist or .json, without '/')")
            }
            c.cniConfName = n
        }
        c.ipamDataDir = try absolutePath(r, "ipamDataDir") ?? c.ipamDataDir
        if let d = try r.string("underlayDevice") {
            if let problem = interfaceNameProblem(d) { throw FieldError("underlayDevice", "\"\(d)\": an interface name \(problem)") }
            c.underlayDevice = d
        }
        if let d = try r.string("overlayDevice") {
            if let problem = interfaceNameProblem(d) { throw FieldError("overlayDevice", "\"\(d)\": an interface name \(problem)") }
            c.overlayDevice = d
        }
        if let m = try r.string("datapathMode") {
            guard let v = DatapathMode(rawValue: m) else {
                throw FieldError("datapathMode", "\"\(m)\" is not a datapath mode; use one of \(DatapathMode.allowedValues)")
            }
            c.datapathMode = v
        }
        if let vni = try r.integer("vni") {
            guard vni >= 0, vni <= Int(maxVNI) else {
                throw FieldError("vni", "\(vni) is out of range; a Geneve VNI is 0 to \(maxVNI)")
            }
            c.vni = UInt32(vni)
        }
        if let mtu = try r.integer("mtu") {
            guard mtu == 0 || (576...65535).contains(mtu) else {
                throw FieldError("mtu", "\(mtu) is out of range; use 576 to 65535, or 0 for the underlay MTU minus \(geneveOverhead)")
            }
            c.mtu = mtu
        }
        if r.member("clusterCIDRs") != nil {
            var cidrs: [IPNetwork] = []
            for (i, s) in try r.strings("clusterCIDRs").enumerated() {
                cidrs.append(try TreeReader.network(s, path: "clusterCIDRs[\(i)]"))
            }
            c.clusterCIDRs = cidrs
        }
        c.masquerade = try r.bool("masquerade") ?? c.masquerade
        if let a = try r.string("healthAddress") {
            guard let v = ListenAddress(a) else {
                throw FieldError("healthAddress", "\"\(a)\" is not ADDRESS:PORT (e.g. 127.0.0.1:9876 or [::1]:9876)")
            }
            c.healthAddress = v
        }
        if let l = try r.string("logLevel") {
            guard let v = Logger.Level(rawValue: l) else {
                throw FieldError("logLevel", "\"\(l)\" is not a log level; use one of "
                    + Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
            }
            c.logLevel = v
        }
        return c
    }

    private static func absolutePath(_ r: TreeReader, _ key: String) throws(FieldError) -> String? {
        guard let p = try r.string(key) else { return nil }
        guard p.hasPrefix("/") else { throw FieldError(key, "\"\(p)\" is not an absolute path") }
        // One spelling per folder: "/run/trellis/" and "/run/trellis" are the same.
        var trimmed = p
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
        return trimmed
    }

    /// Kubernetes object names: a DNS subdomain (RFC 1123), at most 253 characters.
    public static func nodeNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "cannot be empty" }
        if name.utf8.count > 253 { return "is longer than 253 characters" }
        let ok = name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "." }
        guard ok, let first = name.unicodeScalars.first, let last = name.unicodeScalars.last,
              first != "-", first != ".", last != "-", last != "." else {
            return "is not a valid Node name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)"
        }
        return nil
    }

    /// Linux interface names, as the kernel's `dev_valid_name` accepts them.
    static func interfaceNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "cannot be empty" }
        if name.utf8.count > 15 { return "is at most 15 bytes" }
        if name == "." || name == ".." { return "cannot be \".\" or \"..\"" }
        if name.contains("/") || name.contains(":") { return "cannot contain '/' or ':'" }
        if name.unicodeScalars.contains(where: { $0.properties.isWhitespace }) { return "cannot contain whitespace" }
        return nil
    }
}

// MARK: - Writing

extension AgentConfig {
    /// The default configuration as commented YAML; parsing it gives `defaults` back.
    public static var defaultYAML: String {
        let d = defaults
        return """
        # trellis-agent configuration (docs/agent.md). Every key is optional; the values below
        # are the defaults.

        # The Node object this agent serves (default: this host's name, lower-cased).
        # nodeName: \(d.nodeName)

        # Where cluster state comes from: manifests (a directory) or kubernetes.
        source: \(d.source.rawValue)

        # manifests source: YAML/JSON files of Nodes, Namespaces, Pods and NetworkPolicies,
        # watched for changes.
        manifestsDir: \(d.manifestsDir)

        # kubernetes source: a kubeconfig for use outside the cluster; empty = the pod's
        # service account (KUBERNETES_SERVICE_HOST/PORT and its token, rotated as it is).
        kubeconfig: "\(d.kubeconfig)"

        # Where the compiled *.bpf.o files are (default: the folder of the agent binary,
        # then \(installedBPFObjectDir)).
        # bpfObjectDir: \(installedBPFObjectDir)

        # Maps are pinned here (a bpffs mount, or a folder inside one).
        bpffsDir: \(d.bpffsDir)

        # The CNI handshake socket.
        socketPath: \(d.socketPath)

        # Where the agent writes its conflist once ready, and its file name.
        cniConfDir: \(d.cniConfDir)
        cniConfName: \(d.cniConfName)

        # Written into the conflist as ipam.dataDir.
        ipamDataDir: \(d.ipamDataDir)

        # The node's device towards other nodes: Geneve leaves and arrives here.
        underlayDevice: \(d.underlayDevice)

        # Created by the agent (a veth pair, this name and NAME_p): the node's own traffic to pods
        # on other nodes, and Service traffic kube-proxy sends there, is routed into it and
        # encapsulated.
        overlayDevice: \(d.overlayDevice)

        # \(DatapathMode.allCases.map(\.rawValue).joined(separator: " or ")); written into the conflist as mode.
        datapathMode: \(d.datapathMode.rawValue)

        # Geneve VNI (0 to \(maxVNI)).
        vni: \(d.vni)

        # Pod MTU; 0 = underlay MTU minus \(geneveOverhead) (outer IPv4 20 + UDP 8 + Geneve 8 + inner Ethernet 14).
        mtu: \(d.mtu)

        # Destinations that are not masqueraded (default, when empty: the pod CIDRs of all Nodes).
        clusterCIDRs: []

        # Pod traffic leaving the cluster is masqueraded to the node IP (nftables table inet trellis).
        masquerade: \(d.masquerade)

        # HTTP: /healthz, /readyz, /metrics.
        healthAddress: "\(d.healthAddress)"

        # trace, debug, info, notice, warning, error or critical.
        logLevel: \(d.logLevel.rawValue)

        """
    }
}

extension AgentConfig {
    /// Every key with its resolved value, as YAML (for `--check-config`).
    public var resolvedDescription: String {
        var lines = [
            "nodeName: \(nodeName)",
            "source: \(source.rawValue)",
            "manifestsDir: \(manifestsDir)",
            "kubeconfig: \"\(kubeconfig)\"",
        ]
        lines.append(bpfObjectDir.map { "bpfObjectDir: \($0)" }
            ?? "# bpfObjectDir (searched): \(bpfObjectSearchPath.joined(separator: ", "))")
        lines += [
            "bpffsDir: \(bpffsDir)",
            "socketPath: \(socketPath)",
            "cniConfDir: \(cniConfDir)",
            "cniConfName: \(cniConfName)",
            "ipamDataDir: \(ipamDataDir)",
            "underlayDevice: \(underlayDevice)",
            "overlayDevice: \(overlayDevice)",
            "datapathMode: \(datapathMode.rawValue)",
            "vni: \(vni)",
            "mtu: \(mtu)",
            "clusterCIDRs: [\(clusterCIDRs.map(\.description).joined(separator: ", "))]",
            "masquerade: \(masquerade)",
            "healthAddress: \"\(healthAddress)\"",
            "logLevel: \(logLevel.rawValue)",
        ]
        return lines.joined(separator: "\n") + "\n"
    }
}
