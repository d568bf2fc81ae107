import Foundation
import Testing
@testable import TrellisAgent
import TrellisJSON
import TrellisKube
import TrellisManifests
import TrellisPolicy

/// The Kubernetes client's NetworkPolicy converted to the policy model directly (the agent's
/// kubernetes source) gives what the manifest parser gives for the same object: the same
/// policy, or the same problems with the same paths, in the same order.
struct KubePolicyConversionTests {
    /// A policy, or the description of the error that refused it.
    enum Outcome: Equatable {
        case policy(TrellisPolicy.NetworkPolicy)
        case refused(String)

        var problems: String {
            if case .refused(let text) = self { return text }
            return ""
        }
    }

    /// Both readings of the one object in `yaml`: the parser's, and the conversion's of the
    /// Kubernetes client's object decoded from the same document.
    static func readBothWays(_ yaml: String) throws -> (parsed: Outcome, converted: Outcome) {
        let file = try ManifestFile(parsing: yaml, path: "p.yaml")
        let value = try #require(file.objects.first?.value)
        let parsed: Outcome
        do { parsed = .policy(try TrellisPolicy.NetworkPolicy(parsing: PolicyValue(value))) } catch { parsed = .refused(error.description) }
        let kube = try JSONDecoder().decode(TrellisKube.NetworkPolicy.self, from: Data(value.serialized.utf8))
        let converted: Outcome
        do { converted = .policy(try TrellisPolicy.NetworkPolicy(kube)) } catch { converted = .refused(error.description) }
        return (parsed, converted)
    }

    static func policy(_ spec: String, metadata: String = "{name: p, namespace: shop}") -> String {
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: \(metadata)\nspec:\n"
            + spec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
    }

    @Test("valid policies: the conversion is the parser's policy")
    func validPoliciesConvertAsParsed() throws {
        let everyPeer = try ManifestFile(parsing: KubeModelTests.policyJSON, path: "api.json").objects[0].value
        let kube = try JSONDecoder().decode(TrellisKube.NetworkPolicy.self, from: Data(everyPeer.serialized.utf8))
        let parsed = try TrellisPolicy.NetworkPolicy(parsing: PolicyValue(everyPeer))
        #expect(try TrellisPolicy.NetworkPolicy(kube) == parsed)
        #expect(parsed.ingress.first?.peers.count == 3 && parsed.egress.count == 2)

        for spec in [
            "podSelector: {}",
            "{}",
            """
            podSelector: {matchLabels: {app: db}, matchExpressions: [{key: tier, operator: NotIn, values: [a, b]}, {key: x, operator: Exists}]}
            policyTypes: [Egress, Ingress]
            ingress:
            - {}
            - from: [{namespaceSelector: {matchLabels: {team: a}}, podSelector: {matchExpressions: [{key: k, operator: DoesNotExist}]}}]
              ports: [{port: metrics}, {protocol: SCTP, port: 9000, endPort: 9100}, {protocol: UDP}]
            egress:
            - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.2.3.0/24]}}, {ipBlock: {cidr: "fd00::/8"}}]
            """,
        ] {
            let (parsed, converted) = try Self.readBothWays(Self.policy(spec, metadata: "{name: p, namespace: shop, labels: {a: b}}"))
            #expect(parsed.problems.isEmpty, "\(parsed)")
            #expect(converted == parsed, "\(spec)")
        }
        // No namespace: "default", as the parser has it.
        let (parsed2, converted2) = try Self.readBothWays(Self.policy("podSelector: {}", metadata: "{name: p}"))
        #expect(parsed2 == converted2)
        #expect(try TrellisPolicy.NetworkPolicy(TrellisKube.NetworkPolicy(metadata: ObjectMeta(name: "p"))).key == PolicyKey("default", "p"))
    }

    @Test("invalid policies: the same problems, paths and order as the parser's")
    func invalidPoliciesFailAsParsed() throws {
        let cases: [(spec: String, metadata: String, expected: String)] = [
            ("podSelector: {matchExpressions: [{key: app, operator: Like}]}", "{name: p}",
             "policy default/p: spec.podSelector.matchExpressions[0].operator \"Like\" is not In, NotIn, Exists or DoesNotExist"),
            ("ingress: [{from: [{podSelector: {}}, {podSelector: {matchExpressions: [{key: app, operator: In}]}}]}]", "{name: p}",
             "policy default/p: spec.ingress[0].from[1].podSelector.matchExpressions[0].values must be non-empty for In"),
            ("egress: [{to: [{podSelector: {matchExpressions: [{key: app, operator: Exists, values: [x]}]}}]}]", "{name: p}",
             "policy default/p: spec.egress[0].to[0].podSelector.matchExpressions[0].values must be empty for Exists"),
            ("ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16, \"fd00::/64\"]}}]}]", "{name: p}",
             "policy default/p: spec.ingress[0].from[0].ipBlock.except[0] 11.0.0.0/16 is not inside cidr 10.0.0.0/8 (an except must be a strict subset); "
                + "spec.ingress[0].from[0].ipBlock.except[1] fd00::/64 is not the same address family as cidr 10.0.0.0/8"),
            ("ingress: [{from: [{ipBlock: {cidr: nonsense}}, {}, {ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]", "{name: p}",
             "policy default/p: spec.ingress[0].from[0].ipBlock.cidr \"nonsense\" is not a CIDR (address/prefix length); "
                + "spec.ingress[0].from[1] must specify podSelector, namespaceSelector or ipBlock; "
                + "spec.ingress[0].from[2] may not combine ipBlock with podSelector or namespaceSelector"),
            ("ingress: [{ports: [{port: 80, endPort: 79}, {port: http, endPort: 90}, {endPort: 90}, {port: 0}, {port: Not_A_Name}, {protocol: ICMP}]}]",
             "{name: p, namespace: shop}",
             "policy shop/p: spec.ingress[0].ports[0].endPort 79 < port 80; "
                + "spec.ingress[0].ports[1].endPort may not be given with the named port \"http\"; "
                + "spec.ingress[0].ports[2].endPort may not be given without port; "
                + "spec.ingress[0].ports[3].port 0 is not a port number (1 to 65535); "
                + "spec.ingress[0].ports[4].port \"Not_A_Name\" is not a port name (lower-case letters, digits and '-' only); "
                + "spec.ingress[0].ports[5].protocol \"ICMP\" is not TCP, UDP or SCTP"),
            ("policyTypes: [Ingress, Sideways, Egress]\npodSelector: {matchLabels: {\"bad key\": x}}", "{name: \"\", labels: {\"a/b/c\": d}}",
             ""),
        ]
        for c in cases {
            let (parsed, converted) = try Self.readBothWays(Self.policy(c.spec, metadata: c.metadata))
            if !c.expected.isEmpty { #expect(parsed.problems == c.expected) }
            #expect(parsed.problems.hasPrefix("policy "), "\(c.spec): \(parsed)")
            #expect(converted == parsed, "\(c.spec)")
        }
    }
}
