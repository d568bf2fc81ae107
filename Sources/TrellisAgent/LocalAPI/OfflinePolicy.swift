import Foundation
import TrellisPolicy

/// NetworkPolicy from manifests, without an agent: what `trellisctl policy explain -f` asks.
/// The files are read as the manifests source reads its folder (Namespaces, Pods, Nodes,
/// NetworkPolicies; YAML or JSON; a later object of the same kind and name wins) and compiled
/// by an engine of no node (every pod compiled, no `host`).
public enum OfflinePolicy {
    /// `paths`: files, or folders whose *.yaml, *.yml and *.json files are read in name order.
    public static func engine(manifests paths: [String]) throws -> (engine: PolicyEngine, problems: [String]) {
        var files: [String] = []
        for path in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                throw ManifestError(path: path, reason: "no such file or folder")
            }
            if isDir.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
                files += names.filter(ManifestScanner.isManifestName).map { path + "/" + $0 }
            } else {
                files.append(path)
            }
        }
        var snapshot = ClusterSnapshot.empty
        var problems: [String] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ManifestError(path: file, reason: "cannot be read")
            }
            let content = try ManifestParser.parse(String(decoding: data, as: UTF8.self), path: file)
            problems += content.problems.map { "\(file): \($0)" }
            for object in content.objects {
                snapshot.insert(object)
            }
        }
        // Pods of namespaces no file declares still have the namespace's name label.
        let inputs = PolicyInputs.from(snapshot, localNode: "", localAddresses: [:], routers: [])
        let engine = PolicyEngine(localNode: nil, policies: Array(inputs.policies.values), pods: Array(inputs.pods.values),
                                  namespaces: Array(inputs.namespaces.values), nodes: Array(inputs.nodes.values))
        return (engine, problems)
    }
}
