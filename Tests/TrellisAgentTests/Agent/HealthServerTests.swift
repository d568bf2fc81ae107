import Testing
@testable import TrellisAgent

extension AgentSuite {
    @Suite("Agent health server")
    struct HealthServerTests {
        @Test("healthz, readyz 503 then 200, metrics, errors; over TCP on 127.0.0.1 with an ephemeral port")
        func endpoints() async throws {
            let board = StatusBoard()
            let log = TestLog()
            let server = try HealthServer(address: AgentConfig.ListenAddress("127.0.0.1:0")!, logger: log.logger,
                                          report: { board.report },
                                          extraMetrics: { [
                                              "trellis_datapath_drops_total": 3, "bad name-1": 1.5,
                                              #"trellis_datapath_forwards_total{direction="from_pod",kind="encap"}"#: 5,
                                              #"trellis_datapath_forwards_total{direction="to_overlay",kind="encap"}"#: 2,
                                          ] })
            server.start()
            do {
                try await check(server, board)
            } catch {
                await server.stop()
                throw error
            }
            await server.stop()
        }

        func check(_ server: HealthServer, _ board: StatusBoard) async throws {
            #expect(server.port != 0)

            let healthz = try await httpGet(port: server.port, "/healthz")
            #expect(healthz.status == 200 && healthz.body == "ok\n")
            #expect(healthz.headers["content-length"] == "3")
            #expect(healthz.headers["connection"] == "close")

            board.notReady("waiting for Node a")
            let notReady = try await httpGet(port: server.port, "/readyz")
            #expect(notReady.status == 503)
            #expect(notReady.body == "not ready: waiting for Node a\n")
            #expect(notReady.headers["content-length"] == "\(notReady.body.utf8.count)")

            board.set(AgentMetrics.endpoints, 4)
            board.set(AgentMetrics.tunnels, 2)
            board.markReady()
            let ready = try await httpGet(port: server.port, "/readyz?verbose")
            #expect(ready.status == 200 && ready.body == "ready\n")

            let metrics = try await httpGet(port: server.port, "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
            #expect(metrics.headers["content-length"] == "\(metrics.body.utf8.count)")
            let lines = metrics.body.split(separator: "\n").map(String.init)
            #expect(lines.contains("trellis_agent_ready 1"))
            #expect(lines.contains("trellis_agent_endpoints 4"))
            #expect(lines.contains("trellis_agent_tunnels 2"))
            #expect(lines.contains("# TYPE trellis_agent_endpoints gauge"))
            #expect(lines.contains("trellis_datapath_drops_total 3"))
            #expect(lines.contains("# TYPE trellis_datapath_drops_total counter"))
            #expect(lines.contains("bad_name_1 1.5"))
            // Labelled samples: one family, one TYPE line, the labels kept as written.
            #expect(lines.filter { $0 == "# TYPE trellis_datapath_forwards_total counter" }.count == 1)
            #expect(lines.contains(#"trellis_datapath_forwards_total{direction="from_pod",kind="encap"} 5"#))
            #expect(lines.contains(#"trellis_datapath_forwards_total{direction="to_overlay",kind="encap"} 2"#))

            let head = try await httpGet(port: server.port, "/healthz", method: "HEAD")
            #expect(head.status == 200 && head.body.isEmpty && head.headers["content-length"] == "3")
            let post = try await httpGet(port: server.port, "/healthz", method: "POST")
            #expect(post.status == 405 && post.headers["allow"] == "GET, HEAD")
            let missing = try await httpGet(port: server.port, "/nope")
            #expect(missing.status == 404)
        }
    }
}

extension AgentSuite {
    @Suite("Agent metrics exposition")
    struct MetricsExpositionTests {
        @Test("HELP and TYPE from the definitions, labels parsed with escapes, counters grow and reset, registries apart")
        func publishing() {
            let exposition = MetricsExposition()
            var lines = exposition.render([
                AgentMetrics.snapshots: 3, AgentMetrics.endpoints: 2.5,
                #"x_total{path="a\"b",kind="c"}"#: 7,
            ]).split(separator: "\n").map(String.init)
            #expect(lines.contains("# HELP \(AgentMetrics.snapshots) Cluster state snapshots received from the source."))
            #expect(lines.contains("# TYPE \(AgentMetrics.snapshots) counter"))
            #expect(lines.contains("\(AgentMetrics.snapshots) 3"))
            #expect(lines.contains("# TYPE \(AgentMetrics.endpoints) gauge"))
            #expect(lines.contains("\(AgentMetrics.endpoints) 2.5"))
            #expect(lines.contains(#"x_total{path="a\"b",kind="c"} 7"#))

            // Totals from the sources: growth is added; a total that went down starts again.
            lines = exposition.render([AgentMetrics.snapshots: 5, AgentMetrics.endpoints: 1, #"x_total{path="a\"b",kind="c"}"#: 2])
                .split(separator: "\n").map(String.init)
            #expect(lines.contains("\(AgentMetrics.snapshots) 5"))
            #expect(lines.contains("\(AgentMetrics.endpoints) 1"))
            #expect(lines.contains(#"x_total{path="a\"b",kind="c"} 2"#))

            // Another agent's registry (or a test's) sees none of it.
            #expect(!MetricsExposition().render([:]).contains(AgentMetrics.snapshots))
        }

        @Test("sample keys: name alone, labels in order, malformed label sets kept as the name")
        func splitLabels() {
            #expect(AgentMetrics.splitLabels("a_total").name == "a_total")
            let labelled = AgentMetrics.splitLabels(#"a{direction="from_pod",kind="encap"}"#)
            #expect(labelled.name == "a")
            #expect(labelled.labels.map { "\($0.0)=\($0.1)" } == ["direction=from_pod", "kind=encap"])
            #expect(AgentMetrics.splitLabels(#"a{direction=from_pod}"#).labels.isEmpty)
            #expect(AgentMetrics.splitLabels(#"a{direction="open}"#).labels.isEmpty)
        }
    }
}
