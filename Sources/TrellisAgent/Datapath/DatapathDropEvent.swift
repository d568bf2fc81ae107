import TrellisNet

/// A packet the datapath dropped, as its event ring reports it (the agent's view of it; names
/// are resolved by the agent).
public struct DatapathDropEvent: Sendable, Equatable {
    /// CLOCK_MONOTONIC nanoseconds.
    public var timestampNs: UInt64
    /// Stable snake_case reason (`policy_ingress`, `spoofed_ip`, ...), or `code_N` when unknown.
    public var reason: String
    /// Human words for the reason.
    public var reasonText: String
    /// `from_pod`, `to_pod`, `from_underlay`, `to_overlay`, `to_underlay`.
    public var direction: String
    public var ifindex: UInt32
    /// IPPROTO_* (0 when not parsed).
    public var proto: UInt8
    public var source: IPAddress?
    public var destination: IPAddress?
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var length: UInt32

    public init(timestampNs: UInt64, reason: String, reasonText: String, direction: String, ifindex: UInt32,
                proto: UInt8, source: IPAddress?, destination: IPAddress?, sourcePort: UInt16,
                destinationPort: UInt16, length: UInt32) {
        self.timestampNs = timestampNs
        self.reason = reason
        self.reasonText = reasonText
        self.direction = direction
        self.ifindex = ifindex
        self.proto = proto
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.length = length
    }
}
