import TrellisJSON

/// The agent's answer to a `HandshakeRequest`: one JSON line, `{"ok":true}`,
/// `{"ok":true,"ready":false}` or `{"ok":false,"error":"..."}`. The agent encodes it with
/// `json`, the plugin decodes it with `decode`.
public enum HandshakeReply: Sendable, Equatable {
    /// ADD or DEL done.
    case ok
    /// The answer to STATUS.
    case status(ready: Bool)
    /// Refused or failed, saying why (the plugin passes the text on to the runtime).
    case failure(String)

    public var json: JSONValue {
        switch self {
        case .ok: .object([("ok", .bool(true))])
        case .status(let ready): .object([("ok", .bool(true)), ("ready", .bool(ready))])
        case .failure(let why): .object([("ok", .bool(false)), ("error", .string(why))])
        }
    }

    public var line: [UInt8] { json.bytes + [0x0A] }

    /// Decodes an answer line (without its newline); the error names the field that is wrong.
    /// A `ready` member makes it a `.status`, whichever request it answers.
    public static func decode(_ line: [UInt8]) throws(FieldError) -> HandshakeReply {
        let document: JSONValue
        do { document = try JSONValue.parse(line) } catch {
            throw FieldError("", "answer is not JSON: \(error)")
        }
        let r = try TreeReader(document)
        guard let ok = try r.bool("ok") else { throw FieldError("ok", "missing") }
        guard ok else { return .failure(try r.string("error") ?? "refused without a reason") }
        if let ready = try r.bool("ready") { return .status(ready: ready) }
        return .ok
    }
}
