import Foundation
import Testing
import TrellisNet
@testable import TrellisIPAM

// MARK: - Helpers

/// A fresh directory under /tmp, removed when the test ends.
private func withIPAMDir<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array("/tmp/trellis-ipam-test-XXXXXX".utf8CString)
    let dir = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        .map { String(cString: $0) })
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func net(_ s: String) -> IPNetwork { IPNetwork(s)! }
private func key(_ id: String, _ ifname: String = "eth0") -> AttachmentKey { AttachmentKey(containerID: id, ifname: ifname) }

private extension IPAMStore {
    /// The addresses (without prefix) of one new allocation.
    func take(_ id: String, _ ranges: [IPAMRange], reserved: [IPNetwork] = []) throws -> [String] {
        let (a, isNew) = try allocate(key(id), ranges: ranges, reserved: reserved)
        #expect(isNew)
        return a.addresses.map { $0.address.description }
    }
}

private func expectExhausted(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> IPAMError? {
    do {
        try body()
        Issue.record("expected exhaustion", sourceLocation: sourceLocation)
        return nil
    } catch let e as IPAMError {
        guard case .exhausted = e else {
            Issue.record("expected exhaustion, got \(e)", sourceLocation: sourceLocation)
            return e
        }
        return e
    } catch {
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

private let v4Range29 = IPAMRange(subnet: net("10.244.1.0/29"), rangeStart: ip("10.244.1.2"),
                          rangeEnd: ip("10.244.1.6"), gateway: ip("10.244.1.1"))

// MARK: - Ranges

@Suite struct IPAMRangeTests {
    @Test func defaultsFollowTheDocs() {
        let v4 = IPAMRange(subnet: net("10.244.1.77/24"))
        #expect(v4.subnet == net("10.244.1.0/24"))
        #expect(v4.rangeStart == ip("10.244.1.1"))
        #expect(v4.rangeEnd == ip("10.244.1.254"))
        #expect(v4.gateway == nil)
        let v6 = IPAMRange(subnet: net("fd00:1::/64"))
        #expect(v6.rangeStart == ip("fd00:1::1"))
        #expect(v6.rangeEnd == ip("fd00:1::ffff:ffff:ffff:ffff"))
        let p2p = IPAMRange(subnet: net("10.0.0.0/31"))
        #expect(p2p.rangeStart == ip("10.0.0.0") && p2p.rangeEnd == ip("10.0.0.1"))
    }

    @Test func invalidRangesAreRejected() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            let bad: [IPAMRange] = [
                IPAMRange(subnet: net("10.244.1.0/24"), rangeStart: ip("10.244.2.1")),
                IPAMRange(subnet: net("10.244.1.0/24"), rangeStart: ip("10.244.1.9"), rangeEnd: ip("10.244.1.8")),
                IPAMRange(subnet: net("10.244.1.0/24"), rangeEnd: ip("fd00::1")),
            ]
            for r in bad {
                #expect(throws: IPAMError.self) { _ = try store.allocate(key("a"), ranges: [r], reserved: []) }
            }
            #expect(throws: IPAMError.self) { _ = try store.allocate(key("a"), ranges: [], reserved: []) }
            #expect(try store.all().isEmpty)
        }
    }
}

// MARK: - Allocation

@Suite struct IPAMAllocationTests {
    @Test func skipsNetworkGatewayAndBroadcast() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            // The range covers the whole /29, network and broadcast included.
            let r = IPAMRange(subnet: net("10.244.1.0/29"), rangeStart: ip("10.244.1.0"),
                              rangeEnd: ip("10.244.1.7"), gateway: ip("10.244.1.1"))
            var got: [String] = []
            for i in 0..<5 { got += try store.take("c\(i)", [r]) }
            #expect(got == ["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6"])
            _ = expectExhausted { _ = try store.allocate(key("c5"), ranges: [r], reserved: []) }
        }
    }

    @Test func resultCarriesPrefixAndGateway() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            let (a, isNew) = try store.allocate(key("c"), ranges: [v4Range29], reserved: [])
            #expect(isNew)
            #expect(a.key == key("c"))
            #expect(a.addresses == [net("10.244.1.2/29")])
            #expect(a.gateways == [ip("10.244.1.1")])
        }
    }

    @Test func skipsReservedAddressesAndCIDRs() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            let r = IPAMRange(subnet: net("10.244.1.0/24"), rangeStart: ip("10.244.1.10"),
                              rangeEnd: ip("10.244.1.40"), gateway: ip("10.244.1.1"))
            let reserved = [net("10.244.1.10/32"), net("10.244.1.12/32"), net("10.244.1.16/28"),
                            net("10.244.1.33/32"), net("fd00::/8")]
            var got: [String] = []
            for i in 0..<6 { got += try store.take("c\(i)", [r], reserved: reserved) }
            #expect(got == ["10.244.1.11", "10.244.1.13", "10.244.1.14", "10.244.1.15",
                            "10.244.1.32", "10.244.1.34"])
        }
    }

    @Test func staysWithinRangeBounds() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            let r = IPAMRange(subnet: net("10.244.1.0/24"), rangeStart: ip("10.244.1.100"),
                              rangeEnd: ip("10.244.1.102"), gateway: ip("10.244.1.1"))
            var got: [String] = []
            for i in 0..<3 { got += try store.take("c\(i)", [r]) }
            #expect(got == ["10.244.1.100", "10.244.1.101", "10.244.1.102"])
            _ = expectExhausted { _ = try store.allocate(key("c3"), ranges: [r], reserved: []) }
        }
    }

    @Test func dualStackAllocatesBothTogether() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            let ranges = [IPAMRange(subnet: net("10.244.1.0/24"), gateway: ip("10.244.1.1")),
                          IPAMRange(subnet: net("fd00:10:244:1::/64"), gateway: ip("fd00:10:244:1::1"))]
            let (a, _) = try store.allocate(key("c0"), ranges: ranges, reserved: [])
            #expect(a.addresses == [net("10.244.1.2/24"), net("fd00:10:244:1::2/64")])
            #expect(a.gateways == [ip("10.244.1.1"), ip("fd00:10:244:1::1")])
            let (b, _) = try store.allocate(key("c1"), ranges: ranges, reserved: [])
            #expect(b.addresses == [net("10.244.1.3/24"), net("fd00:10:244:1::3/64")])
            #expect(try store.allocation(for: key("c1")) == b)
            #expect(try store.all() == [a, b])
        }
    }

    @Test func allocateIsIdempotent() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            let first = try store.allocate(key("c"), ranges: [v4Range29], reserved: [])
            let again = try store.allocate(key("c"), ranges: [v4Range29], reserved: [])
            #expect(first.isNew && !again.isNew)
            #expect(first.allocation == again.allocation)
            // Another interface of the same container is another attachment.
            let other = try store.allocate(key("c", "net1"), ranges: [v4Range29], reserved: [])
            #expect(other.isNew && other.allocation.addresses == [net("10.244.1.3/29")])
            #expect(try store.all().count == 2)
        }
    }

    @Test func roundRobinDoesNotReuseAReleasedAddressImmediately() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            #expect(try store.take("a", [v4Range29]) == ["10.244.1.2"])
            #expect(try store.take("b", [v4Range29]) == ["10.244.1.3"])
            let released = try store.release(key("a"))
            #expect(released?.addresses == [net("10.244.1.2/29")])
            #expect(try store.release(key("a")) == nil)
            #expect(try store.take("c", [v4Range29]) == ["10.244.1.4"])
            #expect(try store.take("d", [v4Range29]) == ["10.244.1.5"])
            #expect(try store.take("e", [v4Range29]) == ["10.244.1.6"])
            // Wraps to the start, skipping .3 which b still holds.
            #expect(try store.take("f", [v4Range29]) == ["10.244.1.2"])
            _ = try store.release(key("d"))
            #expect(try store.take("g", [v4Range29]) == ["10.244.1.5"])
        }
    }

    @Test func exhaustionNamesSubnetAndRange() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            for i in 0..<5 { _ = try store.take("c\(i)", [v4Range29]) }
            let e = expectExhausted { _ = try store.allocate(key("x"), ranges: [v4Range29], reserved: []) }
            #expect(e?.description == "no free address in 10.244.1.0/29 (range 10.244.1.2-10.244.1.6: all 5 assignable addresses in use)")
            #expect(try store.all().count == 5)
        }
    }

    @Test func exhaustionCountsReservedAddresses() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            let r = IPAMRange(subnet: net("10.244.1.0/29"), gateway: ip("10.244.1.1"))
            let reserved = [net("10.244.1.4/31")]
            #expect(try store.take("a", [r], reserved: reserved) == ["10.244.1.2"])
            #expect(try store.take("b", [r], reserved: reserved) == ["10.244.1.3"])
            #expect(try store.take("c", [r], reserved: reserved) == ["10.244.1.6"])
            let e = expectExhausted { _ = try store.allocate(key("x"), ranges: [r], reserved: reserved) }
            #expect(e?.description == "no free address in 10.244.1.0/29 (range 10.244.1.1-10.244.1.6: all 3 assignable addresses in use; 3 more reserved or excluded)")
        }
    }

    @Test func secondRangeExhaustedWritesNothing() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            // fd00::/126: ::1 is the gateway, so only ::2 and ::3 can be handed out.
            let ranges = [IPAMRange(subnet: net("10.244.1.0/24"), gateway: ip("10.244.1.1")),
                          IPAMRange(subnet: net("fd00::/126"), gateway: ip("fd00::1"))]
            _ = try store.allocate(key("a"), ranges: ranges, reserved: [])
            _ = try store.allocate(key("b"), ranges: ranges, reserved: [])
            let before = try Data(contentsOf: URL(fileURLWithPath: store.statePath))
            let e = expectExhausted { _ = try store.allocate(key("c"), ranges: ranges, reserved: []) }
            #expect(e?.description.contains("fd00::/126") == true)
            let after = try Data(contentsOf: URL(fileURLWithPath: store.statePath))
            #expect(before == after)
            #expect(try store.allocation(for: key("c")) == nil)
            // The IPv4 cursor did not move: the next IPv4-only allocation continues after .3.
            let v4 = try store.take("d", [ranges[0]])
            #expect(v4 == ["10.244.1.4"])
        }
    }
}

// MARK: - Persistence

@Suite struct IPAMPersistenceTests {
    @Test func newStoreSeesAllocationsAndCursor() throws {
        try withIPAMDir { dir in
            let first = try IPAMStore(directory: dir)
            _ = try first.take("a", [v4Range29])
            _ = try first.take("b", [v4Range29])
            _ = try first.release(key("b"))

            let second = try IPAMStore(directory: dir)
            #expect(try second.all().map(\.key) == [key("a")])
            #expect(try second.allocation(for: key("a"))?.addresses == [net("10.244.1.2/29")])
            // The cursor persisted: .3 was handed out last, so .4 comes next.
            #expect(try second.take("c", [v4Range29]) == ["10.244.1.4"])
        }
    }

    @Test func stateFileHasVersionAndRecords() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            let ranges = [v4Range29, IPAMRange(subnet: net("fd00::/64"))]
            _ = try store.take("b", ranges)
            _ = try store.take("a", ranges)
            let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/allocations.json"))
            let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(json["version"] as? Int == 1)
            let records = try #require(json["allocations"] as? [[String: Any]])
            #expect(records.count == 2)
            #expect((records[0]["key"] as? [String: Any])?["containerID"] as? String == "a")
            #expect(records[0]["addresses"] as? [String] == ["10.244.1.3/29", "fd00::2/64"])
            let gateways = try #require(records[0]["gateways"] as? [Any])
            #expect(gateways.first as? String == "10.244.1.1")
            #expect(gateways.last is NSNull)
            let cursors = try #require(json["cursors"] as? [String: String])
            #expect(cursors == ["10.244.1.0/29": "10.244.1.3", "fd00::/64": "fd00::2"])
        }
    }

    @Test(arguments: ["{not json", "", "{\"version\": 1, \"allocations\": [{\"key\": 3}], \"cursors\": {}}",
                      "{\"version\": 99, \"allocations\": [], \"cursors\": {}}"])
    func corruptStateFileIsAnError(content: String) throws {
        try withIPAMDir { dir in
            let path = dir + "/allocations.json"
            try content.write(toFile: path, atomically: false, encoding: .utf8)
            let store = try IPAMStore(directory: dir)
            for op in [{ _ = try store.allocate(key("a"), ranges: [v4Range29], reserved: []) },
                       { _ = try store.all() },
                       { _ = try store.release(key("a")) }] as [() throws -> Void] {
                do {
                    try op()
                    Issue.record("expected stateCorrupt")
                } catch let e as IPAMError {
                    guard case .stateCorrupt(let p, _) = e else { Issue.record("got \(e)"); continue }
                    #expect(p == path)
                    #expect(e.description.contains(path))
                }
            }
            #expect(try String(contentsOfFile: path, encoding: .utf8) == content)
        }
    }

    @Test func createsMissingDirectoryPrivate() throws {
        try withIPAMDir { dir in
            let nested = dir + "/data/trellis-net/"
            let store = try IPAMStore(directory: nested)
            #expect(store.directory == dir + "/data/trellis-net")
            var st = stat()
            #expect(stat(store.directory, &st) == 0)
            #expect(st.st_mode & 0o777 == 0o700)
            _ = try store.take("a", [v4Range29])
            // A file where the directory should be.
            #expect(throws: IPAMError.self) { _ = try IPAMStore(directory: store.statePath) }
        }
    }

    @Test func noTempFilesLeftBehind() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            for i in 0..<4 { _ = try store.take("c\(i)", [v4Range29]) }
            _ = try store.release(key("c1"))
            _ = try store.releaseAll(except: [key("c0")])
            _ = expectExhausted {
                _ = try store.allocate(key("x"), ranges: [IPAMRange(subnet: net("10.0.0.0/30"))],
                                       reserved: [net("10.0.0.0/30")])
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
            #expect(names == ["allocations.json", "lock"])
        }
    }

    @Test func releaseAllExceptKeepsOnlyTheLiving() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            for id in ["a", "b", "c", "d"] { _ = try store.take(id, [v4Range29]) }
            let released = try store.releaseAll(except: [key("b"), key("d"), key("zz")])
            #expect(released.map(\.key) == [key("a"), key("c")])
            #expect(released.map(\.addresses) == [[net("10.244.1.2/29")], [net("10.244.1.4/29")]])
            #expect(try store.all().map(\.key) == [key("b"), key("d")])
            #expect(try store.releaseAll(except: [key("b"), key("d")]).isEmpty)
            #expect(try IPAMStore(directory: dir).all().count == 2)
        }
    }
}

// MARK: - Concurrency and scale

private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String] = []
    private var errors: [String] = []
    func add(_ v: String) { lock.lock(); values.append(v); lock.unlock() }
    func fail(_ e: String) { lock.lock(); errors.append(e); lock.unlock() }
    var snapshot: (values: [String], errors: [String]) { lock.lock(); defer { lock.unlock() }; return (values, errors) }
}

@Suite struct IPAMConcurrencyTests {
    @Test func sixteenConcurrentStoresNeverHandOutDuplicates() throws {
        try withIPAMDir { dir in
            let box = ResultBox()
            let done = DispatchGroup()
            let start = DispatchSemaphore(value: 0)
            let n = 16
            for i in 0..<n {
                done.enter()
                let t = Thread {
                    defer { done.leave() }
                    start.wait()
                    do {
                        // Each thread is a plugin process: its own store, its own lock descriptor.
                        let store = try IPAMStore(directory: dir)
                        let ranges = [IPAMRange(subnet: net("10.244.1.0/24"), gateway: ip("10.244.1.1")),
                                      IPAMRange(subnet: net("fd00::/64"), gateway: ip("fd00::1"))]
                        let (a, _) = try store.allocate(key("c\(i)"), ranges: ranges, reserved: [])
                        for addr in a.addresses { box.add(addr.description) }
                    } catch {
                        box.fail("\(error)")
                    }
                }
                t.start()
            }
            for _ in 0..<n { start.signal() }
            #expect(done.wait(timeout: .now() + 60) == .success)
            let (values, errors) = box.snapshot
            #expect(errors.isEmpty)
            #expect(values.count == 2 * n)
            #expect(Set(values).count == 2 * n)
            let all = try IPAMStore(directory: dir).all()
            #expect(all.count == n)
            #expect(Set(all.flatMap(\.addresses)).count == 2 * n)
            let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
            #expect(names == ["allocations.json", "lock"])
        }
    }

    @Test func largeIPv6RangeIsFast() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            let r = IPAMRange(subnet: net("fd00:10::/64"), gateway: ip("fd00:10::1"))
            // Reserve the whole lower half: the search must jump over 2^63 addresses at once.
            let reserved = [net("fd00:10::/65")]
            let clock = ContinuousClock()
            let began = clock.now
            do {
                for i in 0..<200 {
                    let got = try store.take("c\(i)", [r], reserved: reserved)
                    #expect(got == [IPAddress.v6(0xfd00_0010_0000_0000, 0x8000_0000_0000_0000 + UInt64(i)).description])
                }
            }
            #expect(clock.now - began < .seconds(20))
        }
    }

    @Test func cursorWrapsAtTheEndOfAHugeRange() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            let r = IPAMRange(subnet: net("fd00::/64"), rangeStart: ip("fd00::1"),
                              rangeEnd: ip("fd00::ffff:ffff:ffff:ffff"))
            let tail = IPAMRange(subnet: net("fd00::/64"), rangeStart: ip("fd00::ffff:ffff:ffff:fffe"),
                                 rangeEnd: ip("fd00::ffff:ffff:ffff:ffff"))
            #expect(try store.take("a", [tail]) == ["fd00::ffff:ffff:ffff:fffe"])
            #expect(try store.take("b", [tail]) == ["fd00::ffff:ffff:ffff:ffff"])
            _ = try store.release(key("a"))
            // The cursor sits at the very last address of the /64: the search wraps.
            #expect(try store.take("c", [tail]) == ["fd00::ffff:ffff:ffff:fffe"])
            // On the full range the cursor (::ffff:ffff:ffff:fffe) continues at the end, then wraps to ::1.
            #expect(try store.take("d", [r]) == ["fd00::1"])
        }
    }

    @Test func hugeExhaustedRangeReportsExactCounts() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            let r = IPAMRange(subnet: net("fd00::/63"))
            let e = expectExhausted { _ = try store.allocate(key("a"), ranges: [r], reserved: [net("fd00::/63")]) }
            // 2^65 - 1 addresses from fd00::1 to the end of the /63, all reserved.
            #expect(e?.description == "no free address in fd00::/63 (range fd00::1-fd00::1:ffff:ffff:ffff:ffff: all 0 assignable addresses in use; 36893488147419103231 more reserved or excluded)")
        }
    }

    @Test func fullIPv4SixteenBitRange() throws {
        try withIPAMDir { dir in
            let store = try IPAMStore(directory: dir)
            let r = IPAMRange(subnet: net("10.8.0.0/16"), gateway: ip("10.8.0.1"))
            // Most of the /16 is taken: the search still steps over the used block quickly.
            var state = IPAMState()
            for i in 0..<60000 {
                let a = IPAddress.v4(0x0A08_0002 + UInt32(i))
                state.allocations.append(Allocation(key: key(String(format: "c%05d", i)),
                    addresses: [IPNetwork(address: a, prefixLength: 16)!], gateways: [ip("10.8.0.1")]))
            }
            try StateFiles(directory: dir).store(state)
            let clock = ContinuousClock()
            let began = clock.now
            do {
                #expect(try store.take("new", [r]) == ["10.8.234.98"])
                #expect(try store.take("new2", [r]) == ["10.8.234.99"])
            }
            #expect(clock.now - began < .seconds(20))
        }
    }
}

// MARK: - Free-address search

@Suite struct IPAMSearchTests {
    @Test func mergeJoinsOverlappingAndTouching() {
        let m = mergeIntervals([
            AddressInterval(lower: ip("10.0.0.5"), upper: ip("10.0.0.6")),
            AddressInterval(lower: ip("10.0.0.1"), upper: ip("10.0.0.3")),
            AddressInterval(lower: ip("10.0.0.4"), upper: ip("10.0.0.4")),
            AddressInterval(lower: ip("10.0.0.9"), upper: ip("10.0.0.9")),
            AddressInterval(lower: ip("10.0.0.2"), upper: ip("10.0.0.2")),
        ])
        #expect(m == [AddressInterval(lower: ip("10.0.0.1"), upper: ip("10.0.0.6")),
                      AddressInterval(lower: ip("10.0.0.9"), upper: ip("10.0.0.9"))])
    }

    @Test func firstFreeJumpsOverBlocks() {
        let blocked = [AddressInterval(lower: ip("fd00::"), upper: ip("fd00::ffff:ffff:ffff:fffe"))]
        #expect(firstFree(from: ip("fd00::5"), to: ip("fd00::ffff:ffff:ffff:ffff"), blocked: blocked)
                == ip("fd00::ffff:ffff:ffff:ffff"))
        #expect(firstFree(from: ip("fd00::5"), to: ip("fd00::ffff:ffff:ffff:fffe"), blocked: blocked) == nil)
        let top = [AddressInterval(lower: ip("255.255.255.254"), upper: ip("255.255.255.255"))]
        #expect(firstFree(from: ip("255.255.255.254"), to: ip("255.255.255.255"), blocked: top) == nil)
    }
}
