@_exported import TrellisJSON

extension JSONValue {
    /// Parses a whole CNI document; the error (code 6) says what was being read and where.
    static func parse(_ bytes: [UInt8], what: String) throws(CNIError) -> JSONValue {
        let jsonWhitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
        guard bytes.contains(where: { !jsonWhitespace.contains($0) }) else {
            throw .decodeFailure("\(what): empty input, expected a JSON object")
        }
        do {
            return try JSONValue.parse(bytes)
        } catch {
            throw .decodeFailure("\(what) is not valid JSON: \(error)")
        }
    }

    var data: [UInt8] { bytes }
}
