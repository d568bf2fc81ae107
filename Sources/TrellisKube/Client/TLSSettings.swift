import NIOSSL

extension KubeClientConfig {
    /// The swift-nio-ssl client configuration these settings stand for; nil for plain HTTP.
    func makeTLSConfiguration() throws(KubeConfigError) -> TLSConfiguration? {
        guard server.hasPrefix("https://") else { return nil }
        func fail(_ field: String, _ error: any Error) -> KubeConfigError {
            KubeConfigError(context: "TLS settings of \(origin)", field: field, message: "\(error)")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = certificateAuthorityPEM {
            do {
                let certificates = try NIOSSLCertificate.fromPEMBytes(ca)
                if certificates.isEmpty { throw KubeRequestError(message: "no certificate in the PEM data") }
                tls.trustRoots = .certificates(certificates)
            } catch {
                throw fail("certificate-authority", error)
            }
        }
        if insecureSkipTLSVerify { tls.certificateVerification = .none }
        if let certPEM = clientCertificatePEM, let keyPEM = clientKeyPEM {
            do {
                let chain = try NIOSSLCertificate.fromPEMBytes(certPEM)
                if chain.isEmpty { throw KubeRequestError(message: "no certificate in the PEM data") }
                tls.certificateChain = chain.map { .certificate($0) }
            } catch {
                throw fail("client-certificate", error)
            }
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: keyPEM, format: .pem))
            } catch {
                throw fail("client-key", error)
            }
        }
        return tls
    }
}
