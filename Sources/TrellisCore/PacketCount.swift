/// Packets and bytes of one counter (C `struct trellis_metric_value`), summed over CPUs.
public struct PacketCount: Sendable, Equatable {
    public var packets: UInt64
    public var bytes: UInt64
    public init(packets: UInt64, bytes: UInt64) {
        self.packets = packets
        self.bytes = bytes
    }
}
