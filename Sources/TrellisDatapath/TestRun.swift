import CLibbpf
import CTrellisBPF
import TrellisDatapathLayout
#if canImport(Glibc)
import Glibc
#endif

/// The outcome of one BPF_PROG_TEST_RUN.
public struct TestRunResult: Sendable, Equatable {
    /// The program's return value (TC_ACT_*).
    public var retval: UInt32
    /// The packet as the program left it.
    public var packet: [UInt8]
    /// skb->cb[0...4] afterwards (test harnesses report through them).
    public var cb: [UInt32]
    /// skb->mark afterwards.
    public var mark: UInt32 = 0
}

/// tc verdicts (linux/pkt_cls.h), for reading `TestRunResult.retval`.
public enum TCAction {
    public static let ok: UInt32 = 0
    public static let shot: UInt32 = 2
    public static let redirect: UInt32 = 7
}

extension BPFProgram {
    /// Runs the program once on `packet` (an Ethernet frame) with BPF_PROG_TEST_RUN. Redirects
    /// are not performed: the verdict says TC_ACT_REDIRECT and the packet is returned as it was
    /// at that point. The kernel resolves device indexes in the calling thread's namespace.
    ///
    /// - ingressIfindex: the device the skb pretends to arrive on (skb->dev, ifindex and
    ///   ingress_ifindex; must exist in the calling thread's namespace); nil: loopback.
    /// - cb: initial skb->cb words.
    /// - mark: the initial skb->mark (what the stack hands an egress program).
    /// - checksumComplete: run on a CHECKSUM_COMPLETE skb; the kernel then fails the run
    ///   (EBADMSG) when the program leaves skb->csum inconsistent with the packet bytes.
    public func testRun(packet: [UInt8], ingressIfindex: Int32? = nil, cb: [UInt32] = [], mark: UInt32 = 0,
                        checksumComplete: Bool = false) throws(DatapathError) -> TestRunResult {
        var ctx = __sk_buff()
        ctx.mark = mark
        if let ifindex = ingressIfindex {
            ctx.ifindex = UInt32(bitPattern: ifindex)
            ctx.ingress_ifindex = UInt32(bitPattern: ifindex)
        }
        withUnsafeMutableBytes(of: &ctx.cb) { raw in
            for (i, w) in cb.prefix(5).enumerated() { raw.storeBytes(of: w, toByteOffset: i * 4, as: UInt32.self) }
        }
        var ctxOut = __sk_buff()
        let input = packet
        var output = [UInt8](repeating: 0, count: packet.count + 1024)
        var opts = bpf_test_run_opts()
        opts.sz = optsSize(bpf_test_run_opts.self, last: \.batch_size)
        opts.data_size_in = UInt32(packet.count)
        opts.data_size_out = UInt32(output.count)
        opts.ctx_size_in = UInt32(MemoryLayout<__sk_buff>.size)
        opts.ctx_size_out = UInt32(MemoryLayout<__sk_buff>.size)
        opts.repeat = 1
        opts.flags = checksumComplete ? UInt32(TRELLIS_TEST_RUN_SKB_CHECKSUM_COMPLETE) : 0
        let fd = self.fd
        try LibBPF.call("test-run \(name)") {
            input.withUnsafeBytes { inBuf in
                output.withUnsafeMutableBytes { outBuf in
                    withUnsafePointer(to: &ctx) { ctxIn in
                        withUnsafeMutablePointer(to: &ctxOut) { ctxOutPtr in
                            opts.data_in = inBuf.baseAddress
                            opts.data_out = outBuf.baseAddress
                            opts.ctx_in = UnsafeRawPointer(ctxIn)
                            opts.ctx_out = UnsafeMutableRawPointer(ctxOutPtr)
                            return bpf_prog_test_run_opts(fd, &opts)
                        }
                    }
                }
            }
        }
        let cbOut = withUnsafeBytes(of: ctxOut.cb) { raw in
            (0..<5).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self) }
        }
        return TestRunResult(retval: opts.retval, packet: Array(output.prefix(Int(opts.data_size_out))), cb: cbOut,
                             mark: ctxOut.mark)
    }
}

extension Datapath {
    /// BPF_PROG_TEST_RUN of one of the datapath's programs (see `BPFProgram.testRun`).
    public func testRun(program: String, packet: [UInt8], ingressIfindex: Int32? = nil,
                        cb: [UInt32] = [], mark: UInt32 = 0, checksumComplete: Bool = false) throws(DatapathError) -> TestRunResult {
        try self.program(program).testRun(packet: packet, ingressIfindex: ingressIfindex, cb: cb, mark: mark,
                                          checksumComplete: checksumComplete)
    }
}
