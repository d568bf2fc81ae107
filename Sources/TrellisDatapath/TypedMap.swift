import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// Typed access to a map whose key and value are the C structs of bpf/lib/common.h. Errors name
/// the map. Borrows the map: valid while the `BPFObject` that owns it lives.
struct TypedMap<Key: BitwiseCopyable, Value: BitwiseCopyable> {
    let map: BPFMap

    init(_ map: BPFMap) throws(DatapathError) {
        guard map.keySize == MemoryLayout<Key>.size else {
            throw DatapathError("use map \(map.name)", code: EINVAL,
                                message: "key size \(map.keySize) in the object, \(MemoryLayout<Key>.size) in Swift")
        }
        // Per-CPU maps declare the size of one CPU's value, like the others.
        guard map.valueSize == MemoryLayout<Value>.size else {
            throw DatapathError("use map \(map.name)", code: EINVAL,
                                message: "value size \(map.valueSize) in the object, \(MemoryLayout<Value>.size) in Swift")
        }
        self.map = map
    }

    /// Bytes of one value as bpf(2) reads and writes it: per-CPU maps hold one 8-byte aligned
    /// slot per possible CPU.
    var isPerCPU: Bool {
        let t = map.type
        return t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_ARRAY || t == BPF_MAP_TYPE_LRU_PERCPU_HASH
    }

    func lookup(_ key: Key) throws(DatapathError) -> Value? {
        var k = key
        var v = zeroed(Value.self)
        let rc = try LibBPF.call("look up in \(map.name)", tolerating: [ENOENT]) {
            bpf_map_lookup_elem(map.fd, &k, &v)
        }
        return rc == -ENOENT ? nil : v
    }

    func update(_ key: Key, _ value: Value, flags: UInt64 = UInt64(BPF_ANY)) throws(DatapathError) {
        var k = key
        var v = value
        try LibBPF.call("update \(map.name)") { bpf_map_update_elem(map.fd, &k, &v, flags) }
    }

    /// Deletes the entry; false when there was none.
    @discardableResult
    func delete(_ key: Key) throws(DatapathError) -> Bool {
        var k = key
        let rc = try LibBPF.call("delete from \(map.name)", tolerating: [ENOENT]) {
            bpf_map_delete_elem(map.fd, &k)
        }
        return rc != -ENOENT
    }

    /// Every key (bpf_map_get_next_key walk; entries deleted meanwhile may end the walk early
    /// or be skipped, as with any BPF hash map iteration).
    func keys() throws(DatapathError) -> [Key] {
        var out: [Key] = []
        var cur = zeroed(Key.self)
        var next = zeroed(Key.self)
        var rc = try LibBPF.call("iterate \(map.name)", tolerating: [ENOENT]) {
            bpf_map_get_next_key(map.fd, nil, &next)
        }
        while rc >= 0 {
            out.append(next)
            cur = next
            rc = try LibBPF.call("iterate \(map.name)", tolerating: [ENOENT]) {
                bpf_map_get_next_key(map.fd, &cur, &next)
            }
        }
        return out
    }

    /// Every entry.
    func entries() throws(DatapathError) -> [(Key, Value)] {
        var out: [(Key, Value)] = []
        for key in try keys() {
            if let v = try lookup(key) { out.append((key, v)) }
        }
        return out
    }

    /// Per-CPU maps: the values of every possible CPU.
    func lookupPerCPU(_ key: Key) throws(DatapathError) -> [Value]? {
        let stride = (MemoryLayout<Value>.size + 7) & ~7
        let cpus = LibBPF.possibleCPUs
        var k = key
        var buf = [UInt8](repeating: 0, count: stride * cpus)
        let rc = try LibBPF.call("look up in \(map.name)", tolerating: [ENOENT]) {
            buf.withUnsafeMutableBytes { bpf_map_lookup_elem(map.fd, &k, $0.baseAddress) }
        }
        if rc == -ENOENT { return nil }
        return buf.withUnsafeBytes { raw in
            (0..<cpus).map { raw.loadUnaligned(fromByteOffset: $0 * stride, as: Value.self) }
        }
    }
}
