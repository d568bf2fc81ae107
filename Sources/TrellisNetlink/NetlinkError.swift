import CNetlink
#if canImport(Glibc)
import Glibc
#endif

/// A failed netlink or namespace operation: what was attempted, on what, and why.
public struct NetlinkError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        case exists, notFound, permission, busy, invalid, other
    }
    public let operation: String
    public let kind: Kind
    /// libnl's or the kernel's own wording of the failure.
    public let reason: String

    public init(_ operation: String, kind: Kind, reason: String) {
        self.operation = operation
        self.kind = kind
        self.reason = reason
    }

    /// From a negative libnl return code (NLE_*).
    init(_ operation: String, nlCode code: Int32) {
        let c = code < 0 ? -code : code
        let kind: Kind = switch c {
        case NLE_EXIST: .exists
        case NLE_OBJ_NOTFOUND, NLE_NODEV, NLE_NOADDR: .notFound
        case NLE_PERM, NLE_NOACCESS: .permission
        case NLE_BUSY: .busy
        case NLE_INVAL, NLE_RANGE: .invalid
        default: .other
        }
        self.init(operation, kind: kind, reason: String(cString: nl_geterror(c)))
    }

    /// From an errno of a plain syscall.
    init(_ operation: String, errno e: Int32) {
        let kind: Kind = switch e {
        case EEXIST: .exists
        case ENOENT, ENODEV: .notFound
        case EPERM, EACCES: .permission
        case EBUSY: .busy
        case EINVAL: .invalid
        default: .other
        }
        self.init(operation, kind: kind, reason: String(cString: strerror(e)))
    }

    public var description: String { "\(operation): \(reason)" }
}

/// Runs a libnl call and turns its negative return into a typed error.
@discardableResult
func nlCheck(_ operation: @autoclosure () -> String, _ rc: Int32) throws(NetlinkError) -> Int32 {
    if rc < 0 { throw NetlinkError(operation(), nlCode: rc) }
    return rc
}
