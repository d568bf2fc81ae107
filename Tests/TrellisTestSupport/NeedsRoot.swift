import Testing
#if canImport(Glibc)
import Glibc
#endif

extension Trait where Self == ConditionTrait {
    /// The gate of every suite that works in network namespaces of its own (veths, bridges,
    /// bpffs mounts, BPF programs, agents): without root it is reported as skipped, with this
    /// reason. Nothing gated by it touches the root network namespace.
    public static var needsRoot: Self {
        .enabled(if: getuid() == 0, "needs root: creates network namespaces, veths, bpffs mounts and BPF programs")
    }
}
