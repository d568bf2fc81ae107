import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// An open (and, once `load` succeeded, loaded) BPF object file: owns its `bpf_object*`, which
/// is closed in deinit. Closing unloads the programs that nothing else holds (a tc filter keeps
/// its program alive) and drops this object's references to its maps (pinned maps stay).
public final class BPFObject {
    let raw: OpaquePointer
    /// The object file this was opened from.
    public let path: String
    public private(set) var isLoaded = false

    /// Opens an object file. With `pinRoot`, maps declared with LIBBPF_PIN_BY_NAME are pinned
    /// (or, if already pinned, reused) at `pinRoot/<map name>`; without it, pinning is turned off.
    public init(path: String, pinRoot: String?) throws(DatapathError) {
        var opts = bpf_object_open_opts()
        opts.sz = optsSize(bpf_object_open_opts.self, last: \.kernel_log_level)
        let obj: OpaquePointer? = pinRoot.withOptionalCString { root in
            opts.pin_root_path = root
            return bpf_object__open_file(path, &opts)
        }
        let err = libbpf_get_error(UnsafeRawPointer(obj))
        guard let obj, err == 0 else {
            throw DatapathError("open BPF object \(path)", errno: Int32(truncatingIfNeeded: err == 0 ? Int(ENOENT) : err))
        }
        raw = obj
        self.path = path
        if pinRoot == nil {
            for map in allMaps() { bpf_map__set_pin_path(map, nil) }
        }
    }

    deinit { bpf_object__close(raw) }

    /// Makes the object's maps named `names` use the file descriptors of `other`'s maps of the
    /// same name instead of creating their own (before `load`). This is how several program
    /// objects share one set of maps when nothing is pinned; pinning is turned off for them.
    public func shareMaps(with other: BPFObject, named names: Set<String>) throws(DatapathError) {
        for map in allMaps() {
            let name = String(cString: bpf_map__name(map))
            guard names.contains(name), let theirs = other.rawMap(named: name) else { continue }
            try LibBPF.call("share map \(name) of \(other.path) with \(path)") {
                bpf_map__reuse_fd(map, bpf_map__fd(theirs))
            }
            bpf_map__set_pin_path(map, nil)
        }
    }

    /// Loads every program into the kernel (verifier) and creates, reuses or pins the maps.
    public func load() throws(DatapathError) {
        try LibBPF.capturingLog { () throws(DatapathError) -> Void in
            try LibBPF.call("load BPF object \(path)") { bpf_object__load(raw) }
        }
        isLoaded = true
    }

    /// The program of that function name.
    public func program(named name: String) throws(DatapathError) -> BPFProgram {
        guard let p = bpf_object__find_program_by_name(raw, name) else {
            throw DatapathError("find program \(name) in \(path)", code: ENOENT,
                                message: "no such program in the object")
        }
        return BPFProgram(name: name, fd: bpf_program__fd(p))
    }

    /// The names of the programs in the object.
    public var programNames: [String] {
        var out: [String] = []
        var p = bpf_object__next_program(raw, nil)
        while let prog = p {
            out.append(String(cString: bpf_program__name(prog)))
            p = bpf_object__next_program(raw, prog)
        }
        return out
    }

    /// The map of that name (after `load`, it has a file descriptor).
    public func map(named name: String) throws(DatapathError) -> BPFMap {
        guard let m = rawMap(named: name) else {
            throw DatapathError("find map \(name) in \(path)", code: ENOENT, message: "no such map in the object")
        }
        return BPFMap(raw: m)
    }

    /// The maps of the object that are not libbpf's internal ones (.rodata, .bss, ...).
    var userMaps: [OpaquePointer] { allMaps().filter { !bpf_map__is_internal($0) } }

    func rawMap(named name: String) -> OpaquePointer? {
        bpf_object__find_map_by_name(raw, name)
    }

    func allMaps() -> [OpaquePointer] {
        var out: [OpaquePointer] = []
        var m = bpf_object__next_map(raw, nil)
        while let map = m {
            out.append(map)
            m = bpf_object__next_map(raw, map)
        }
        return out
    }
}

/// A loaded program, borrowed from the `BPFObject` that owns it (valid while the object lives).
public struct BPFProgram: Sendable {
    public let name: String
    public let fd: Int32
}

/// A map, borrowed from the `BPFObject` that owns it (valid while the object lives).
public struct BPFMap: @unchecked Sendable {
    // libbpf's description of the map; only read, never mutated after load.
    let raw: OpaquePointer
    public var name: String { String(cString: bpf_map__name(raw)) }
    public var fd: Int32 { bpf_map__fd(raw) }
    public var keySize: Int { Int(bpf_map__key_size(raw)) }
    public var valueSize: Int { Int(bpf_map__value_size(raw)) }
    public var type: bpf_map_type { bpf_map__type(raw) }
    public var maxEntries: UInt32 { bpf_map__max_entries(raw) }
    public var flags: UInt32 { bpf_map__map_flags(raw) }
}

extension Optional where Wrapped == String {
    func withOptionalCString<R>(_ body: (UnsafePointer<CChar>?) -> R) -> R {
        switch self {
        case .some(let s): s.withCString { body($0) }
        case .none: body(nil)
        }
    }
}
