/// Gives a security identity (a number the datapath's policy maps key on) to a set of labels.
///
/// The seam for the policy work: until NetworkPolicy arrives every workload has identity 0
/// (`FixedIdentityAllocator`). A real allocator returns the same number for the same label
/// set and must be callable from the agent's actor (cheap, synchronous).
public protocol IdentityAllocator: Sendable {
    func identity(namespace: String, podLabels: [String: String], namespaceLabels: [String: String]) -> UInt32
}

public struct FixedIdentityAllocator: IdentityAllocator {
    public let value: UInt32
    public init(_ value: UInt32 = 0) { self.value = value }
    public func identity(namespace: String, podLabels: [String: String], namespaceLabels: [String: String]) -> UInt32 {
        value
    }
}
