import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Private CAs and certificates for the TLS tests, made once per test run with `openssl`.
/// The folder of `TLSMaterial.shared()`, for the exit handler that removes it.
private let tlsMaterialDirectory = Guarded<String?>(nil)

public struct TLSMaterial: Sendable {
    public let dir: String
    public var caCert: String { dir + "/ca.crt" }
    public var serverCert: String { dir + "/server.crt" }
    public var serverKey: String { dir + "/server.key" }
    public var clientCACert: String { dir + "/client-ca.crt" }
    public var clientCert: String { dir + "/client.crt" }
    public var clientKey: String { dir + "/client.key" }
    /// A CA that signed nothing here: trusting only it must fail the handshake.
    public var otherCACert: String { dir + "/other-ca.crt" }

    private static let made = Guarded<TLSMaterial?>(nil)

    public static func shared() throws -> TLSMaterial {
        try made.withLock { cached in
            if let cached { return cached }
            let material = try make()
            cached = material
            return material
        }
    }

    private static func make() throws(StandInFailure) -> TLSMaterial {
        guard let openssl = HostTools.onPath("openssl") else { throw StandInFailure(description: "openssl is not on PATH") }
        let dir = TempDir("kube-tls").path
        // Shared by every test of this process: removed when the process exits.
        tlsMaterialDirectory.withLock { $0 = dir }
        atexit { if let d = tlsMaterialDirectory.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: d) } }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        func run(_ args: [String]) throws(StandInFailure) {
            do {
                let r = try runCommand([openssl] + args)
                if r.status != 0 { throw StandInFailure(description: "openssl \(args.joined(separator: " ")): \(r.stderr)") }
            } catch let e as StandInFailure {
                throw e
            } catch {
                throw StandInFailure(description: "openssl: \(error)")
            }
        }
        func ca(_ name: String, _ cn: String) throws(StandInFailure) {
            try run(["req", "-x509"] + ec + ["-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).crt",
                                              "-days", "2", "-subj", "/CN=\(cn)"])
        }
        func leaf(_ name: String, subject: String, signer: String, extensions: String) throws(StandInFailure) {
            _ = FileManager.default.createFile(atPath: "\(dir)/\(name).ext", contents: Data(extensions.utf8))
            try run(["req"] + ec + ["-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).csr", "-subj", subject])
            try run(["x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/\(signer).crt", "-CAkey", "\(dir)/\(signer).key",
                     "-CAcreateserial", "-out", "\(dir)/\(name).crt", "-days", "2", "-extfile", "\(dir)/\(name).ext"])
        }
        try ca("ca", "trellis-test-ca")
        try ca("client-ca", "trellis-test-client-ca")
        try ca("other-ca", "somebody-else")
        try leaf("server", subject: "/CN=kube-standin", signer: "ca",
                 extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        try leaf("client", subject: "/O=system:nodes/CN=system:node:test", signer: "client-ca",
                 extensions: "extendedKeyUsage=clientAuth\n")
        return TLSMaterial(dir: dir)
    }
}
