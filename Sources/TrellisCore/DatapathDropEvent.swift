import TrellisNet

/// A packet the datapath dropped, as the `trellis_events` ring buffer reports it (C
/// `struct trellis_drop_event`): what the datapath reads, the agent streams to `trellisctl
/// monitor` and the tests check. The reason and direction are kept as raw codes so that an event
/// of a newer datapath, whose code this build does not know, is still shown (`code_N`); `reason`
/// and `direction` give them typed.
public struct DatapathDropEvent: Sendable, Equatable {
    /// CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns).
    public var timestampNs: UInt64
    /// The raw drop code (C `enum trellis_drop_reason`, negative).
    public var code: Int32
    /// The raw direction (C `enum trellis_direction`).
    public var directionCode: UInt8
    /// The device the program ran on.
    public var ifindex: UInt32
    /// IPPROTO_* (0 when not parsed).
    public var proto: UInt8
    /// Source and destination, when the packet was IP and parsed that far.
    public var source: IPAddress?
    public var destination: IPAddress?
    /// Host order; 0 when not parsed (ICMP echo: the identifier).
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// The packet's length.
    public var length: UInt32

    public init(timestampNs: UInt64, code: Int32, directionCode: UInt8, ifindex: UInt32, proto: UInt8,
                source: IPAddress?, destination: IPAddress?, sourcePort: UInt16, destinationPort: UInt16,
                length: UInt32) {
        self.timestampNs = timestampNs
        self.code = code
        self.directionCode = directionCode
        self.ifindex = ifindex
        self.proto = proto
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.length = length
    }

    /// An event of a reason and direction this build knows.
    public init(timestampNs: UInt64, reason: DropReason, direction: Direction, ifindex: UInt32, proto: UInt8,
                source: IPAddress?, destination: IPAddress?, sourcePort: UInt16, destinationPort: UInt16,
                length: UInt32) {
        self.init(timestampNs: timestampNs, code: reason.rawValue, directionCode: direction.rawValue,
                  ifindex: ifindex, proto: proto, source: source, destination: destination,
                  sourcePort: sourcePort, destinationPort: destinationPort, length: length)
    }

    /// nil for a code this build does not know.
    public var reason: DropReason? { DropReason(rawValue: code) }
    public var direction: Direction? { Direction(rawValue: directionCode) }

    /// The reason's stable name (`policy_ingress`, `spoofed_ip`, ...), `code_N` when unknown.
    public var reasonLabel: String { DropReason.label(code: code) }
    /// Human words for the reason.
    public var reasonText: String { reason?.description ?? "drop code \(code)" }
    /// The direction's stable name (`from_pod`, ...), `unknown` when unknown.
    public var directionLabel: String { direction?.label ?? "unknown" }
}
