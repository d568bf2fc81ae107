/// A counter of `trellis_metrics` (C `struct trellis_metric_key`): a direction and either a
/// forward kind or a drop reason. Codes unknown to this build (a newer datapath) are kept raw.
public struct MetricKey: Hashable, Sendable, CustomStringConvertible {
    /// C `enum trellis_metric_kind`.
    public enum Kind: UInt8, Sendable, CaseIterable { case forward = 1, drop = 2 }
    public var direction: Direction
    public var kind: Kind
    /// `ForwardKind` or `DropReason` raw value.
    public var code: Int32

    public init(direction: Direction, kind: Kind, code: Int32) {
        self.direction = direction
        self.kind = kind
        self.code = code
    }
    public static func forward(_ k: ForwardKind, _ d: Direction) -> MetricKey {
        MetricKey(direction: d, kind: .forward, code: k.rawValue)
    }
    public static func drop(_ r: DropReason, _ d: Direction) -> MetricKey {
        MetricKey(direction: d, kind: .drop, code: r.rawValue)
    }
    public var forwardKind: ForwardKind? { kind == .forward ? ForwardKind(rawValue: code) : nil }
    public var dropReason: DropReason? { kind == .drop ? DropReason(rawValue: code) : nil }

    public var description: String {
        switch kind {
        case .forward: "\(direction) forward \(forwardKind.map { "\($0)" } ?? "#\(code)")"
        case .drop: "\(direction) drop \(dropReason.map { "\($0)" } ?? "#\(code)")"
        }
    }
}
