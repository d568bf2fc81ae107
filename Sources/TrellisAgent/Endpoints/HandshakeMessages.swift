import TrellisCore
import TrellisJSON
import TrellisPolicy

/// A request on the agent's socket (docs/agent.md): the CNI handshake (`add`, `del`,
/// `status`, defined in TrellisCore with the plugin's side) and the operator's local API
/// (`agent`, `explain`, `monitor`), which `trellisctl` speaks.
public enum AgentRequest: Sendable, Equatable {
    case handshake(HandshakeRequest)
    /// The agent's state: readiness, revision, counts, local endpoints and their policy.
    case agentStatus
    /// The policy verdict for one connection.
    case explain(ExplainRequest)
    /// Stream drop events until the client goes.
    case monitor(MonitorFilter)

    /// The local API's operations, which the handshake decoder hands back undecoded.
    static let localOperations = ["agent", "explain", "monitor"]

    /// Parses one request line (once: the handshake decoder reads the line, the local API
    /// reads its operations from the same document); the error names the field and what is
    /// wrong with it.
    public static func parse(_ line: [UInt8]) throws(TrellisCore.FieldError) -> AgentRequest {
        switch try HandshakeRequest.decode(line, otherOperations: localOperations) {
        case .handshake(let request):
            return .handshake(request)
        case .other(let op, let document):
            let r = try TreeReader(document)
            switch op {
            case "agent": return .agentStatus
            case "explain": return .explain(try ExplainRequest(r))
            case "monitor": return .monitor(try MonitorFilter(r))
            default: throw FieldError("op", "\"\(op)\" is not an operation")   // not in localOperations
            }
        }
    }
}

/// An answer line on the agent's socket: the handshake's reply, or a local API document.
public enum AgentAnswer: Sendable, Equatable {
    case reply(HandshakeReply)
    /// `{"ok":true, ...members}`: the local API's answers.
    case document([JSONMember])

    public static let ok = AgentAnswer.reply(.ok)
    public static func status(ready: Bool) -> AgentAnswer { .reply(.status(ready: ready)) }
    public static func failure(_ why: String) -> AgentAnswer { .reply(.failure(why)) }

    public var json: JSONValue {
        switch self {
        case .reply(let reply): reply.json
        case .document(let members): .object([JSONMember(key: "ok", value: .bool(true))] + members)
        }
    }

    public var line: [UInt8] { json.bytes + [0x0A] }
}
