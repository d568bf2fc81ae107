import TrellisCNI

/// The `trellis` CNI plugin: one invocation, one command, one answer on stdout.
public enum Plugin {
    /// What the process prints on stdout and exits with.
    public struct Outcome {
        public var stdout: [UInt8]
        public var exitCode: Int32
    }

    /// Runs one CNI invocation. `log` receives diagnostics meant for stderr (the runtime keeps
    /// them); stdout carries only the result or the error object, as the spec requires.
    public static func run(environment: [String: String], stdin: [UInt8],
                           log: @escaping (String) -> Void = { _ in }) -> Outcome {
        // Before the config is read we do not know its version; errors then say the newest.
        var version = CNIVersionInfo.latest
        do {
            let env = try CNIEnvironment(environment)
            if env.command == .version {
                let requested = declaredVersion(stdin) ?? CNIVersionInfo.latest
                return Outcome(stdout: CNIVersionInfo().json(requested: requested), exitCode: 0)
            }
            if let v = declaredVersion(stdin), CNIVersionInfo.isSupported(v) { version = v }
            let conf = try NetConf.parse(stdin)
            version = conf.cniVersion
            guard env.command.isAvailable(in: conf.cniVersion) else {
                throw CNIError.incompatibleVersion(
                    "\(env.command.rawValue) needs cniVersion \(env.command.minimumVersion ?? "?") or newer; the config says \(conf.cniVersion)")
            }
            switch env.command {
            case .add:
                let result = try cmdAdd(env: env, conf: conf, log: log)
                return Outcome(stdout: try result.json(version: conf.cniVersion), exitCode: 0)
            case .del:
                try cmdDel(env: env, conf: conf, log: log)
            case .check:
                try cmdCheck(env: env, conf: conf)
            case .gc:
                try cmdGC(conf: conf, log: log)
            case .status:
                try cmdStatus(conf: conf)
            case .version:
                break
            }
            return Outcome(stdout: [], exitCode: 0)
        } catch let error as CNIError {
            log("trellis: \(error.msg)")
            return Outcome(stdout: error.json(cniVersion: version), exitCode: 1)
        } catch {
            let e = CNIError(code: TrellisErrorCode.datapath, msg: "\(error)")
            return Outcome(stdout: e.json(cniVersion: version), exitCode: 1)
        }
    }

    /// The config's cniVersion when it can be read, so even a config error answers in it.
    private static func declaredVersion(_ stdin: [UInt8]) -> String? {
        guard case .string(let v)? = (try? JSONValue.parse(stdin))?["cniVersion"] else { return nil }
        return v
    }
}
