#if canImport(Glibc)
import Glibc
#endif

/// A failed datapath operation: what was attempted (naming the map, program or device), the
/// errno the kernel or libbpf gave, and its text. Verifier and libbpf messages, when there were
/// any, are appended to `message`.
public struct DatapathError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What was being done, e.g. "update trellis_endpoints" or "attach from_pod to ifindex 7 ingress".
    public let operation: String
    /// The errno (positive); 0 when the failure did not come from a system call.
    public let code: Int32
    /// Why: strerror(code), or a description when there is no errno.
    public let message: String

    public init(_ operation: String, code: Int32, message: String) {
        self.operation = operation
        self.code = code
        self.message = message
    }

    /// From an errno, positive or negative (libbpf returns -errno).
    init(_ operation: String, errno e: Int32, detail: String? = nil) {
        let c = e < 0 ? -e : e
        var m = String(cString: strerror(c))
        if let detail, !detail.isEmpty { m += "\n" + detail }
        self.init(operation, code: c, message: m)
    }

    public var description: String { "\(operation): \(message)" }
}
