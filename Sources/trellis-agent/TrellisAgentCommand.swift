import ArgumentParser
import CLibbpf
import Foundation
import Logging
import ServiceLifecycle
import TrellisAgent

/// The node agent (docs/agent.md). Runs until SIGTERM or SIGINT, then exits 0 leaving the
/// datapath programmed: traffic keeps flowing while the agent restarts.
@main
struct TrellisAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trellis-agent",
        abstract: "The Trellis node agent: datapath, Geneve overlay, CNI handshake.",
        discussion: """
            Configuration keys and defaults: docs/agent.md (or --print-default-config).
            Readiness: GET /readyz on healthAddress answers 200, and the conflist appears in cniConfDir.
            """,
        version: "0.2.0 (libbpf \(libbpf_major_version()).\(libbpf_minor_version()))")

    @Option(name: .long, help: ArgumentHelp("The YAML configuration file; without it every key has its default.",
                                            valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Overrides nodeName (for a DaemonSet: --node-name=$(NODE_NAME)).",
                                            valueName: "name"))
    var nodeName: String?

    @Option(name: .long, help: ArgumentHelp("Overrides logLevel (trace, debug, info, notice, warning, error, critical).",
                                            valueName: "level"))
    var logLevel: String?

    @Flag(name: .long, help: "Print the default configuration as YAML and exit.")
    var printDefaultConfig = false

    @Flag(name: .long, help: "Check the configuration, print it resolved, and exit.")
    var checkConfig = false

    func run() async throws {
        if printDefaultConfig {
            print(AgentConfig.defaultYAML, terminator: "")
            return
        }
        var conf: AgentConfig
        do {
            conf = try config.map { try AgentConfig.load(path: $0) } ?? AgentConfig.defaults
            if let nodeName {
                if let problem = AgentConfig.nodeNameProblem(nodeName) {
                    throw AgentConfigError(key: "--node-name", message: "\"\(nodeName)\" \(problem)")
                }
                conf.nodeName = nodeName
            }
            if let logLevel {
                guard let level = Logger.Level(rawValue: logLevel) else {
                    throw AgentConfigError(key: "--log-level", message: "\"\(logLevel)\" is not a log level")
                }
                conf.logLevel = level
            }
        } catch {
            FileHandle.standardError.write(Data("trellis-agent: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if checkConfig {
            print(conf.resolvedDescription, terminator: "")
            return
        }

        let level = conf.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "trellis-agent")

        let agent: Agent
        do {
            let source = try AgentDependencies.source(for: conf, logger: logger)
            agent = Agent(config: conf, logger: logger, dependencies: AgentDependencies(
                makeProgrammer: { config, logger in try await makeDatapathProgrammer(config: config, logger: logger) },
                source: source))
        } catch {
            logger.critical("\(error)")
            throw ExitCode(2)
        }

        // SIGTERM/SIGINT shut the agent down gracefully; run() then stops serving and returns.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [agent], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.critical("trellis-agent failed: \(error)")
            throw ExitCode(1)
        }
    }
}

