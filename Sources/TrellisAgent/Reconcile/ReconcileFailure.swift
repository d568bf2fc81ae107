import TrellisNet

/// One programming action that failed; the reconciler goes on with the others and the agent
/// retries the whole difference later.
public struct ReconcileFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was being programmed, e.g. "tunnel 10.244.2.0/24 (node b)".
    public let object: String
    public let error: String

    public init(object: String, error: String) {
        self.object = object
        self.error = error
    }

    public var description: String { "\(object): \(error)" }
}

extension IPNetwork {
    /// Address order, then prefix length: the order reconcilers program entries in, so logs
    /// and tests read naturally (10.244.2.0/24 before 10.244.10.0/24, IPv4 before IPv6).
    static func programmingOrder(_ a: IPNetwork, _ b: IPNetwork) -> Bool {
        a.address != b.address ? a.address < b.address : a.prefixLength < b.prefixLength
    }
}
