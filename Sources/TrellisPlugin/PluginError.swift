import TrellisCNI
import TrellisIPAM
import TrellisNetlink

/// Plugin-specific error codes (the spec leaves 100 and above to plugins). Documented in
/// docs/cni-config.md; scripts may rely on them.
public enum TrellisErrorCode {
    /// A netlink or namespace operation failed (the message names the device and the call).
    public static let datapath = 100
    /// The address range has no free address.
    public static let addressesExhausted = 101
    /// CHECK found the attachment different from prevResult.
    public static let checkMismatch = 102
    /// CNI_IFNAME already exists inside the pod's network namespace.
    public static let interfaceExists = 103
}

extension CNIError {
    static func datapath(_ e: NetlinkError) -> CNIError {
        CNIError(code: TrellisErrorCode.datapath, msg: e.description)
    }
    static func ipam(_ e: IPAMError) -> CNIError {
        switch e {
        case .exhausted: CNIError(code: TrellisErrorCode.addressesExhausted, msg: e.description)
        default: .ioFailure(e.description)
        }
    }
    static func mismatch(_ what: String) -> CNIError {
        CNIError(code: TrellisErrorCode.checkMismatch, msg: what)
    }
}
