import Foundation
import TrellisJSON
import Yams

/// YAML documents as `JSONValue` trees, so that YAML and JSON input are read by the same code
/// and every error can name the path of the field (`spec.podCIDRs[1]`).
///
/// Scalars take the type YAML's resolver gives them (`1` is a number, `true` a boolean, `~` a
/// null, `"1"` a string), the same reading `kubectl` applies; anchors and aliases are expanded.
public enum YAMLTree {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Every document of a (multi-document) YAML text; empty documents are left out.
    public static func documents(_ text: String) throws(Failure) -> [JSONValue] {
        do {
            var out: [JSONValue] = []
            // The sequence stops at a syntax error and keeps it in `error` instead of throwing.
            var nodes = try Yams.compose_all(yaml: text)
            while let node = nodes.next() {
                let value = try convert(node, depth: 0)
                if value != .null { out.append(value) }
            }
            if let error = nodes.error { throw error }
            return out
        } catch let e as Failure {
            throw e
        } catch {
            throw Failure(description: oneLine("\(error)"))
        }
    }

    /// The single document of `text`; `.null` when it is empty.
    public static func document(_ text: String) throws(Failure) -> JSONValue {
        let docs = try documents(text)
        guard docs.count <= 1 else { throw Failure(description: "expected one YAML document, found \(docs.count)") }
        return docs.first ?? .null
    }

    private static let maxDepth = 128

    private static func convert(_ node: Yams.Node, depth: Int) throws -> JSONValue {
        guard depth < maxDepth else { throw Failure(description: "nesting deeper than \(maxDepth) levels") }
        switch node {
        case .scalar(let scalar):
            switch node.tag.description {
            case Tag.Name.null.rawValue: return .null
            case Tag.Name.bool.rawValue: return node.bool.map(JSONValue.bool) ?? .string(scalar.string)
            case Tag.Name.int.rawValue: return node.int.map { .number(Double($0)) } ?? .string(scalar.string)
            case Tag.Name.float.rawValue: return node.float.map(JSONValue.number) ?? .string(scalar.string)
            default: return .string(scalar.string)
            }
        case .sequence(let seq):
            return .array(try seq.map { try convert($0, depth: depth + 1) })
        case .mapping(let map):
            var members: [JSONMember] = []
            for (key, value) in map {
                guard case .scalar(let k) = key else {
                    throw Failure(description: "line \(key.mark?.line ?? 0): a mapping key must be a scalar")
                }
                let v = try convert(value, depth: depth + 1)
                // Of a repeated key the last one wins, as in the JSON reader.
                if let i = members.firstIndex(where: { $0.key == k.string }) { members.remove(at: i) }
                members.append(JSONMember(key: k.string, value: v))
            }
            return .object(members)
        case .alias:
            throw Failure(description: "line \(node.mark?.line ?? 0): unresolved alias")
        }
    }

    /// Yams errors quote the offending line on following lines; logs want one line.
    private static func oneLine(_ text: String) -> String {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && $0 != "^" }.joined(separator: " | ")
    }
}
