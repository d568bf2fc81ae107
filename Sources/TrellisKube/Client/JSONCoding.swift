import Foundation

/// One JSON encoder configuration for every body the client sends.
enum JSONCoding {
    static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    static func quote(_ text: String) -> String {
        // Encoding a String cannot fail.
        String(decoding: (try? encode(text)) ?? Array("\"\"".utf8), as: UTF8.self)
    }
}
