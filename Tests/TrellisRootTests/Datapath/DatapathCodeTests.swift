import CTrellisBPF
import Foundation
import Testing
import TrellisCore
@testable import TrellisDatapath
import TrellisPolicy

/// The codes of bpf/lib/common.h and their Swift names (TrellisCore), checked both ways without
/// root: every code the C enums define has a Swift case, with the label the C name gives, and
/// Swift has no code C does not.
@Suite("Datapath codes: C enums and Swift names")
struct DatapathCodeTests {
    @Test("every C drop code in [TRELLIS_DROP_REASON_MIN, _MAX] has a DropReason, and no DropReason lies outside")
    func dropReasons() {
        let range = TRELLIS_DROP_REASON_MIN.rawValue...TRELLIS_DROP_REASON_MAX.rawValue
        #expect(range.count > 1 && range.upperBound < 0, "drop codes are negative: \(range)")
        for code in range {
            #expect(DropReason(rawValue: code) != nil,
                    "C drop code \(code) has no Swift DropReason: add a case to Sources/TrellisCore/DropReason.swift")
        }
        for r in DropReason.allCases {
            #expect(range.contains(r.rawValue), "DropReason.\(r) (\(r.rawValue)) is not a C drop code \(range)")
        }
    }

    @Test("every C direction in [1, TRELLIS_DIR_END) has a Direction, and no Direction lies outside")
    func directions() {
        let range = UInt32(1)..<TRELLIS_DIR_END.rawValue
        for v in range {
            #expect(Direction(rawValue: UInt8(v)) != nil, "C direction \(v) has no Swift Direction")
        }
        for d in Direction.allCases { #expect(range.contains(UInt32(d.rawValue)), "Direction.\(d) is not a C direction") }
    }

    @Test("every C forward kind in [1, TRELLIS_FWD_END) has a ForwardKind, and no ForwardKind lies outside")
    func forwardKinds() {
        let range = Int32(1)..<Int32(TRELLIS_FWD_END.rawValue)
        for v in range { #expect(ForwardKind(rawValue: v) != nil, "C forward kind \(v) has no Swift ForwardKind") }
        for k in ForwardKind.allCases { #expect(range.contains(k.rawValue), "ForwardKind.\(k) is not a C forward kind") }
    }

    @Test("metric kinds are the C ones")
    func metricKinds() {
        #expect(UInt32(MetricKey.Kind.forward.rawValue) == TRELLIS_METRIC_FORWARD.rawValue)
        #expect(UInt32(MetricKey.Kind.drop.rawValue) == TRELLIS_METRIC_DROP.rawValue)
        #expect(MetricKey.Kind.allCases.count == 2)
    }

    /// `TRELLIS_<prefix>NAME = value` enumerators of bpf/lib/common.h (not the bounds, which
    /// are defined by name).
    static func enumerators(_ prefix: String) throws -> [(name: String, value: Int)] {
        let header = try String(contentsOfFile: DP.repoRoot + "/bpf/lib/common.h", encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: "^\\s*TRELLIS_\(prefix)([A-Z0-9_]+)\\s*=\\s*(-?[0-9]+)\\s*,",
                                              options: .anchorsMatchLines)
        let ns = header as NSString
        return pattern.matches(in: header, range: NSRange(location: 0, length: ns.length)).map {
            (ns.substring(with: $0.range(at: 1)), Int(ns.substring(with: $0.range(at: 2)))!)
        }
    }

    @Test("the labels are the C names, and the C bounds cover every enumerator (bpf/lib/common.h)")
    func labelsAreTheCNames() throws {
        let drops = try Self.enumerators("DROP_")
        #expect(drops.count == DropReason.allCases.count)
        for (name, value) in drops {
            #expect(DropReason(rawValue: Int32(value))?.label == name.lowercased(), "TRELLIS_DROP_\(name) = \(value)")
            #expect((Int(TRELLIS_DROP_REASON_MIN.rawValue)...Int(TRELLIS_DROP_REASON_MAX.rawValue)).contains(value),
                    "TRELLIS_DROP_\(name) = \(value) is outside TRELLIS_DROP_REASON_MIN/_MAX: move the bound")
        }
        let directions = try Self.enumerators("DIR_")
        #expect(directions.count == Direction.allCases.count)
        for (name, value) in directions {
            #expect(Direction(rawValue: UInt8(value))?.label == name.lowercased(), "TRELLIS_DIR_\(name) = \(value)")
        }
        let kinds = try Self.enumerators("FWD_")
        #expect(kinds.count == ForwardKind.allCases.count)
        for (name, value) in kinds {
            #expect(ForwardKind(rawValue: Int32(value))?.label == name.lowercased(), "TRELLIS_FWD_\(name) = \(value)")
        }
    }

    @Test("an event of a code this build does not know keeps it, named code_N")
    func unknownCodes() {
        let e = DatapathDropEvent(timestampNs: 1, code: -999, directionCode: 77, ifindex: 2, proto: 6, source: nil,
                                  destination: nil, sourcePort: 0, destinationPort: 0, length: 60)
        #expect(e.reason == nil && e.reasonLabel == "code_-999" && e.reasonText == "drop code -999")
        #expect(e.direction == nil && e.directionLabel == "unknown")
        let known = DatapathDropEvent(timestampNs: 1, reason: .noTunnel, direction: .toOverlay, ifindex: 2, proto: 6,
                                      source: nil, destination: nil, sourcePort: 0, destinationPort: 0, length: 60)
        #expect(known.code == TRELLIS_DROP_NO_TUNNEL.rawValue && known.reasonLabel == "no_tunnel")
        #expect(UInt32(known.directionCode) == TRELLIS_DIR_TO_OVERLAY.rawValue && known.directionLabel == "to_overlay")
    }
}

/// The map layouts: Swift reads and writes every map through the C structs of
/// bpf/lib/common.h, and these tests fail when the built objects (bpf/lib/maps.h, compiled for
/// the BPF target) and Swift disagree. No root: the objects are opened, not loaded.
@Suite("Datapath map layouts")
struct DatapathMapLayoutTests {
    @Test("every object declares exactly the maps of DatapathMap, with the key and value sizes Swift uses")
    func mapsOfEveryObject() throws {
        for file in Datapath.objectFiles {
            let object = try BPFObject(path: DP.objectDirectory + "/" + file, pinRoot: nil)
            #expect(Set(object.userMaps.map { BPFMap(raw: $0).name }) == Datapath.mapNames, "\(file)")
            // TypedMap checks each key and value size against the object's definition.
            #expect(throws: Never.self, "\(file)") { _ = try DatapathMaps(object) }
        }
    }

    @Test("a key or value size that differs between the object and Swift is refused")
    func sizeMismatchIsRefused() throws {
        let object = try BPFObject(path: DP.objectDirectory + "/" + Datapath.objectFiles[0], pinRoot: nil)
        #expect(throws: DatapathError.self) {
            _ = try TypedMap<trellis_ip_key, trellis_policy_value>(object.map(.endpoints))
        }
        #expect(throws: DatapathError.self) {
            _ = try TypedMap<trellis_policy_key, trellis_policy_value>(object.map(.endpoints))
        }
    }

    @Test("policy key: prefix lengths are the C struct's offsets, TRELLIS_POLICY_FULL_BITS is every bit")
    func policyPrefixLengths() {
        #expect(trellis_policy_key.fixedBits == 72)
        #expect(trellis_policy_key.protoBits == 80)
        #expect(trellis_policy_key.fullBits == UInt32(TRELLIS_POLICY_FULL_BITS))
    }

    @Test("policy key bytes: host-order ids, direction, protocol, network-order port, unmatched bits zero")
    func policyKeyBytes() throws {
        func bytes(_ k: PolicyMapKey) -> [UInt8] { withUnsafeBytes(of: trellis_policy_key(k)) { Array($0) } }
        let host = { (v: UInt32) in withUnsafeBytes(of: v) { Array($0) } }
        let udp53 = PolicyMapKey(endpoint: 0x0102_0304, direction: .egress, peer: 0x0A0B_0C0D,
                                 ports: .ports(.udp, PortPrefix(base: 53, bits: 16)))
        #expect(bytes(udp53) == host(96) + host(0x0102_0304) + host(0x0A0B_0C0D) + [2, 17, 0, 53])
        let any = PolicyMapKey(endpoint: 1, direction: .ingress, peer: 0, ports: .anyProtocol)
        #expect(bytes(any) == host(72) + host(1) + host(0) + [1, 0, 0, 0])
        let block = PolicyMapKey(endpoint: 1, direction: .ingress, peer: 7, ports: .ports(.tcp, PortPrefix(base: 0x1234, bits: 8)))
        #expect(bytes(block) == host(88) + host(1) + host(7) + [1, 6, 0x12, 0x00])
        for k in [udp53, any, block] { #expect(trellis_policy_key(k).policyMapKey == k) }
    }
}

extension DatapathMapLayoutTests {
    @Test("the benchmarks' reader of the pinned trellis_config has the C size and offset")
    func benchmarkConfigReader() throws {
        let script = try String(contentsOfFile: DP.repoRoot + "/hack/bench/lib/scale_world.py", encoding: .utf8)
        func constant(_ name: String) -> Int? {
            script.split(separator: "\n").first { $0.hasPrefix(name + " = ") }.flatMap { Int($0.dropFirst(name.count + 3)) }
        }
        #expect(constant("TRELLIS_CONFIG_SIZE") == MemoryLayout<trellis_config>.size)
        #expect(constant("TRELLIS_CONFIG_POLICY_GEN") == MemoryLayout<trellis_config>.offset(of: \.policy_gen))
    }
}
