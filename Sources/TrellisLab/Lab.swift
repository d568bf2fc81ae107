import Foundation
import TrellisJSON
import TrellisNet
import TrellisNetlink
import Yams
#if canImport(Glibc)
import Glibc
#endif

/// The local multi-node lab: nodes and pods are network namespaces on this machine, wired by
/// the real `trellis` plugin and (unless `--no-agent`) served by real `trellis-agent`s. Nothing
/// is created in the root network namespace; everything is recorded in the state directory
/// before or right after it is made, and `down` undoes all of it.
///
/// Sendable because nothing in it changes after init (its closures only print); the Kubernetes
/// mode's pod runner shares it with its tasks.
public final class Lab: @unchecked Sendable {
    public let layout: LabLayout
    let explicitBinDir: String?
    /// Lines for the operator (stdout) and for warnings (stderr).
    let say: (String) -> Void
    let warn: (String) -> Void

    public init(stateDir: String, binDir: String? = nil,
                say: @escaping (String) -> Void = { print($0); fflush(nil) },
                warn: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        layout = LabLayout(stateDir: stateDir)
        explicitBinDir = binDir.map(Sys.canonicalPath)
        self.say = say
        self.warn = warn
    }

    /// This executable: it runs `lab exec` and `lab serve`.
    let selfExecutable = Sys.selfExecutable()

    static let searchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    static let underlayBridge = "br0"
    static let underlayMTU = 1500

    static func requireRoot() throws(LabError) {
        guard geteuid() == 0 else {
            throw LabError("trellisctl lab needs root: it creates network namespaces and bpffs mounts, and enters namespaces")
        }
    }

    func binDir(_ state: LabState?) -> String {
        explicitBinDir ?? state?.binDir ?? (selfExecutable as NSString).deletingLastPathComponent
    }
}
