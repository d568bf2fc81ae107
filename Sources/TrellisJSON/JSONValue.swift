/// A JSON document as a tree.
///
/// Trellis reads and writes JSON with this small module instead of Foundation's coders: the
/// CNI plugin is started for every pod, and linking FoundationEssentials' JSON support alone
/// adds ~3 MiB to its resident memory and a millisecond to its start-up.
///
/// CNI input is validated field by field so that every error can name the exact path
/// (`ipam.ranges[1].subnet`) and pick the right CNI error code; a tree makes that direct. Objects
/// keep their members in order so that what we write has a stable, readable layout
/// (`cniVersion` first), which `JSONEncoder` cannot promise.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    /// The value of `key` when this is an object holding it.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// An object from members in the order given, leaving out the absent ones, so encoders
    /// can write optional keys inline.
    public static func object(_ members: [(String, JSONValue?)]) -> JSONValue {
        .object(members.compactMap { key, value in value.map { JSONMember(key: key, value: $0) } })
    }
}

public struct JSONMember: Sendable, Equatable {
    public let key: String
    public let value: JSONValue
    public init(key: String, value: JSONValue) { self.key = key; self.value = value }
}

// MARK: - Writing

extension JSONValue {
    /// Compact JSON text, members in their stored order.
    public var serialized: String {
        var out = ""
        write(to: &out)
        return out
    }

    public var bytes: [UInt8] { Array(serialized.utf8) }

    private func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += Self.format(n)
        case .string(let s): Self.writeString(s, to: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, member) in members.enumerated() {
                if i > 0 { out += "," }
                Self.writeString(member.key, to: &out)
                out += ":"
                member.value.write(to: &out)
            }
            out += "}"
        }
    }

    /// Integers print without a fraction: CNI fields such as `mtu` are integers, and a reader
    /// written in Go rejects `1500.0` for an int field.
    private static func format(_ n: Double) -> String {
        if n.rounded() == n, abs(n) < 9_007_199_254_740_992 { return String(Int64(n)) }
        return n.isFinite ? String(n) : "null"
    }

    private static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    public static func int(_ n: Int) -> JSONValue { .number(Double(n)) }
    public static func strings(_ items: [String]) -> JSONValue { .array(items.map { .string($0) }) }
}
