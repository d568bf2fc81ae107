import NIOCore

/// Cuts a byte stream into lines at `\n`, whatever the chunk boundaries (a watch event may
/// arrive in several chunks, or several in one).
struct LineSplitter {
    /// A line longer than this is an error rather than unbounded memory.
    let maxLineBytes: Int
    private var pending: [UInt8] = []

    init(maxLineBytes: Int = 64 << 20) {
        self.maxLineBytes = maxLineBytes
    }

    struct LineTooLong: Error, CustomStringConvertible {
        let limit: Int
        var description: String { "a line of the stream is longer than \(limit) bytes" }
    }

    /// The complete lines this chunk ends (without their `\n`; `\r\n` is tolerated).
    mutating func append(_ chunk: ByteBuffer) throws -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for byte in chunk.readableBytesView {
            if byte == UInt8(ascii: "\n") {
                if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
                lines.append(pending)
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(byte)
                if pending.count > maxLineBytes { throw LineTooLong(limit: maxLineBytes) }
            }
        }
        return lines
    }

    /// What is left after the stream ended (a last line without `\n`), if anything.
    mutating func finish() -> [UInt8]? {
        defer { pending.removeAll() }
        let rest = pending.filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\t") }
        return rest.isEmpty ? nil : pending
    }
}
