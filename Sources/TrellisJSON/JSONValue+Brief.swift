extension JSONValue {
    /// A short description of a value for error messages: `"abc"`, `12`, `true`, `an object`.
    public var brief: String {
        switch self {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .number: serialized
        case .string(let s): "\"\(s)\""
        case .array: "a list"
        case .object: "a mapping"
        }
    }
}
