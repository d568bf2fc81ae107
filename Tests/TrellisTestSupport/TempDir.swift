import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A temporary folder removed by `remove()`.
public struct TempDir: Sendable {
    public let path: String

    public init(_ tag: String = "agent") {
        var template = Array("/tmp/trellis-test-\(tag)-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: p!)
    }

    public func file(_ name: String) -> String { path + "/" + name }

    public func write(_ name: String, _ text: String) {
        _ = FileManager.default.createFile(atPath: file(name), contents: Data(text.utf8))
    }

    public func read(_ name: String) -> String? {
        FileManager.default.contents(atPath: file(name)).map { String(decoding: $0, as: UTF8.self) }
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

public func withTempDir<T>(_ tag: String = "agent", _ body: (TempDir) async throws -> T) async rethrows -> T {
    let dir = TempDir(tag)
    defer { dir.remove() }
    return try await body(dir)
}
