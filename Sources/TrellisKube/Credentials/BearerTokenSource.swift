#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers

/// Hands out the bearer token for each request, following a token file as it rotates.
///
/// A file is checked at most every `recheckInterval`: when its identity (device, inode,
/// size, mtime) changed it is read again. The kubelet replaces projected tokens by swapping a
/// symlink, which changes the inode behind the path. After a 401, `reloadAfterUnauthorized()`
/// reads the file regardless, so a request made with a just-rotated token is retried once.
final class BearerTokenSource: Sendable {
    let credential: BearerCredential
    let recheckInterval: Duration

    private struct FileIdentity: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var mtimeSeconds: Int
        var mtimeNanoseconds: Int
    }

    private struct State {
        var token: String?
        var identity: FileIdentity?
        var checkedAt: ContinuousClock.Instant?
    }

    private let state = NIOLockedValueBox(State())

    init(_ credential: BearerCredential, recheckInterval: Duration = .seconds(3)) {
        self.credential = credential
        self.recheckInterval = recheckInterval
    }

    /// The token to send now.
    func token() throws(KubeConfigError) -> String {
        switch credential {
        case .token(let token):
            return token
        case .tokenFile(let path):
            let now = ContinuousClock.now
            let cached: String? = state.withLockedValue { s in
                if let token = s.token, let at = s.checkedAt, now - at < recheckInterval { return token }
                return nil
            }
            if let cached { return cached }
            return try refresh(path: path, force: false).token
        }
    }

    /// Reads the token file again; true when the token changed (worth retrying the request).
    func reloadAfterUnauthorized() throws(KubeConfigError) -> Bool {
        guard case .tokenFile(let path) = credential else { return false }
        return try refresh(path: path, force: true).changed
    }

    private func refresh(path: String, force: Bool) throws(KubeConfigError) -> (token: String, changed: Bool) {
        let identity = Self.identity(of: path)
        let now = ContinuousClock.now
        let unchanged: String? = state.withLockedValue { s in
            if !force, let token = s.token, identity != nil, identity == s.identity {
                s.checkedAt = now
                return token
            }
            return nil
        }
        if let unchanged { return (unchanged, false) }
        let token = try FileReading.text(path, context: "bearer token", field: nil)
        return state.withLockedValue { s in
            let changed = s.token != token
            s.token = token
            s.identity = identity
            s.checkedAt = now
            return (token, changed)
        }
    }

    private static func identity(of path: String) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        #if canImport(Darwin)
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                            mtimeSeconds: Int(st.st_mtimespec.tv_sec), mtimeNanoseconds: Int(st.st_mtimespec.tv_nsec))
        #else
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                            mtimeSeconds: Int(st.st_mtim.tv_sec), mtimeNanoseconds: Int(st.st_mtim.tv_nsec))
        #endif
    }
}
