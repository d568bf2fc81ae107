import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// tc (clsact) attachment of a program to one side of a device, through libbpf's bpf_tc_* API
/// (libbpf 1.1: no tcx links).
///
/// Every Trellis filter uses the same fixed handle and priority, so attaching again *replaces*
/// the filter atomically (BPF_TC_F_REPLACE): an agent that restarts swaps its new programs in
/// without a moment with no program. Other filters on the device (other handles) are left alone.
///
/// libbpf talks rtnetlink from the **calling thread's** network namespace: call these on a
/// thread inside the device's namespace (the agent runs in the node's; tests use
/// `NetworkNamespace.run`).
public enum TCHook {
    public enum Side: Sendable, CustomStringConvertible {
        case ingress, egress
        var attachPoint: bpf_tc_attach_point { self == .ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS }
        public var description: String { self == .ingress ? "ingress" : "egress" }
    }

    /// The handle of Trellis' filters ("TR" 0x5452 in the high half).
    public static let handle: UInt32 = 0x5452_0001
    /// The priority of Trellis' filters (lower runs first).
    public static let priority: UInt32 = 1

    static func hook(ifindex: Int32, side: Side) -> bpf_tc_hook {
        var h = bpf_tc_hook()
        h.sz = optsSize(bpf_tc_hook.self, last: \.parent)
        h.ifindex = ifindex
        h.attach_point = side.attachPoint
        return h
    }

    static func opts(progFD: Int32 = 0, flags: UInt32 = 0) -> bpf_tc_opts {
        var o = bpf_tc_opts()
        o.sz = optsSize(bpf_tc_opts.self, last: \.priority)
        o.prog_fd = progFD
        o.flags = flags
        o.handle = handle
        o.priority = priority
        return o
    }

    /// Attaches `program` to `side` of the device, creating its clsact qdisc when missing (an
    /// existing one is fine, and is never removed by Trellis: it may hold other filters, and a
    /// pod's veth takes it along when it goes). Replaces a Trellis filter already there.
    /// Returns true when this call created the clsact qdisc.
    @discardableResult
    public static func attach(_ program: BPFProgram, ifindex: Int32, side: Side) throws(DatapathError) -> Bool {
        var h = hook(ifindex: ifindex, side: side)
        // The kernel's extended error message, which libbpf logs, travels in the error.
        return try LibBPF.capturingLog { () throws(DatapathError) -> Bool in
            let created = try LibBPF.call("create clsact qdisc on ifindex \(ifindex)", tolerating: [EEXIST]) {
                bpf_tc_hook_create(&h)
            }
            var o = opts(progFD: program.fd, flags: UInt32(BPF_TC_F_REPLACE.rawValue))
            try LibBPF.call("attach \(program.name) to ifindex \(ifindex) \(side)") { bpf_tc_attach(&h, &o) }
            return created == 0
        }
    }

    /// Removes the Trellis filter from `side` of the device; false when there was none (or no
    /// clsact qdisc, or no such device).
    @discardableResult
    public static func detach(ifindex: Int32, side: Side) throws(DatapathError) -> Bool {
        var h = hook(ifindex: ifindex, side: side)
        var o = opts()
        let rc = try LibBPF.call("detach the Trellis filter from ifindex \(ifindex) \(side)",
                                 tolerating: [ENOENT, EINVAL, ENODEV]) { bpf_tc_detach(&h, &o) }
        return rc == 0
    }

    /// The kernel ID of the program in the Trellis filter on `side` of the device, nil if none.
    public static func attachedProgramID(ifindex: Int32, side: Side) throws(DatapathError) -> UInt32? {
        var h = hook(ifindex: ifindex, side: side)
        var o = opts()
        let rc = try LibBPF.call("query the Trellis filter on ifindex \(ifindex) \(side)",
                                 tolerating: [ENOENT, EINVAL, ENODEV]) { bpf_tc_query(&h, &o) }
        return rc == 0 ? o.prog_id : nil
    }
}
