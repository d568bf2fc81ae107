/// The request a runtime passes in environment variables, validated for the command.
///
/// Only the variables a command needs are required; the rest are read when present. An empty
/// variable counts as unset, as in libcni: runtimes export empty ones for commands that do not
/// use them.
public struct CNIEnvironment: Sendable, Equatable {
    public let command: CNICommand
    /// CNI_CONTAINERID. Always valid for ADD, DEL and CHECK; empty when a command that does not
    /// need one (GC, STATUS, VERSION) got none.
    public let containerID: String
    /// CNI_NETNS, the network namespace path. Set for ADD and CHECK; DEL may come without one
    /// (the namespace is already gone), and the plugin must still release what it holds.
    public let netns: String?
    /// CNI_IFNAME, the interface to create inside the namespace. Always valid for ADD, DEL and
    /// CHECK; empty otherwise when unset.
    public let ifName: String
    /// CNI_ARGS as key/value pairs; the last one wins when a key repeats.
    public let args: [String: String]
    /// CNI_PATH split on ':'. We never run other plugins, so it may be empty.
    public let path: [String]

    /// The pod's namespace, which the kubelet passes in CNI_ARGS.
    public var podNamespace: String? { args["K8S_POD_NAMESPACE"] }
    /// The pod's name, which the kubelet passes in CNI_ARGS.
    public var podName: String? { args["K8S_POD_NAME"] }

    public init(_ env: [String: String]) throws(CNIError) {
        func value(_ key: String) -> String? {
            guard let v = env[key], !v.isEmpty else { return nil }
            return v
        }

        guard let rawCommand = value("CNI_COMMAND") else {
            throw .invalidEnvironment("CNI_COMMAND is not set")
        }
        guard let command = CNICommand(rawValue: rawCommand) else {
            let known = CNICommand.allCases.map(\.rawValue).joined(separator: ", ")
            throw .invalidEnvironment("CNI_COMMAND \"\(rawCommand)\" is not a CNI command (\(known))")
        }
        self.command = command

        let needsAttachment = [.add, .del, .check].contains(command)
        func required(_ key: String) throws(CNIError) -> String {
            guard let v = value(key) else {
                throw .invalidEnvironment("\(key) is required for \(command.rawValue) but is not set")
            }
            return v
        }

        if needsAttachment {
            let id = try required("CNI_CONTAINERID")
            if let problem = NameRules.identifierProblem(id) {
                throw .invalidEnvironment("CNI_CONTAINERID \"\(id)\": a container ID \(problem)")
            }
            let ifName = try required("CNI_IFNAME")
            if let problem = NameRules.interfaceNameProblem(ifName) {
                throw .invalidEnvironment("CNI_IFNAME \"\(ifName)\": an interface name \(problem)")
            }
            containerID = id
            self.ifName = ifName
        } else {
            // Not validated: nothing of ours uses them for these commands, and rejecting a
            // VERSION call over an unused variable would only break the runtime.
            containerID = value("CNI_CONTAINERID") ?? ""
            ifName = value("CNI_IFNAME") ?? ""
        }

        netns = command == .add || command == .check ? try required("CNI_NETNS") : value("CNI_NETNS")
        args = try Self.parseArgs(value("CNI_ARGS"))
        path = (value("CNI_PATH") ?? "").split(separator: ":").map(String.init)
    }

    /// `K=V;K=V`. Empty segments (a trailing ';') are skipped; a value may itself contain '='
    /// since only the first one separates the key.
    static func parseArgs(_ raw: String?) throws(CNIError) -> [String: String] {
        guard let raw else { return [:] }
        var out: [String: String] = [:]
        for pair in raw.split(separator: ";") {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                throw .invalidEnvironment("CNI_ARGS \"\(raw)\": \"\(pair)\" is not a KEY=VALUE pair")
            }
            out[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        return out
    }
}
