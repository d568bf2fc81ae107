import Foundation
import Logging
import TrellisNet
import TrellisPolicy

/// The node's NetworkPolicy state and its programming: a `PolicyEngine` (identities, the
/// ipcache, the local pods' allow entries) fed with `PolicyInputs`, and the map writes that
/// bring the datapath to it.
///
/// Each change of the inputs becomes one engine change, and its diff is written in the order
/// `PolicyDiff` gives (allows in, ipcache in, ipcache out, allows out), with the endpoint
/// entries' update (`between`) after the additions, so no packet meets a window in which
/// something it should not get is allowed, or something it should get is denied. After a pass
/// that wrote anything the policy generation is bumped, so established flows are checked
/// again against the new state.
///
/// The first pass compiles everything at once and compares it with what is pinned (a
/// restarted agent keeps its pods' endpoint ids, see `PolicyAdoption`); a pass after a failed
/// write does the same, since what the maps hold is then uncertain.
struct PolicyReconciler: Sendable {
    let localNode: String
    private(set) var engine: PolicyEngine
    private(set) var inputs = PolicyInputs()
    private(set) var started = false
    private(set) var needsResync = false
    /// Map writes so far (for metrics).
    private(set) var writes = 0

    init(localNode: String) {
        self.localNode = localNode
        engine = PolicyEngine(localNode: localNode)
    }

    /// Brings engine and maps to `new`. `between` runs after each diff's additions and before
    /// its removals, with the engine as it is then (the agent rewrites endpoint entries there;
    /// it gets the engine as an argument because the reconciler is being modified meanwhile). Returns the failures and
    /// whether anything was written (then the generation was bumped).
    mutating func reconcile(to new: PolicyInputs, programmer: any DatapathProgrammer, logger: Logger,
                            between: (PolicyEngine) -> [ReconcileFailure]) -> (failures: [ReconcileFailure], wrote: Bool) {
        if !started || needsResync {
            return resync(to: new, programmer: programmer, logger: logger, between: between)
        }
        let changes = new.changes(from: inputs)
        inputs = new
        guard !changes.isEmpty else { return ([], false) }
        var failures: [ReconcileFailure] = []
        var wrote = false
        for change in changes {
            let diff = engine.apply(change)
            if diff.isEmpty || !failures.isEmpty { continue }   // after a failure: the resync writes
            logger.debug("policy: \(change): \(diff)")
            let (f, w) = write(diff, programmer: programmer, logger: logger, between: between)
            failures += f
            wrote = wrote || w
        }
        if !failures.isEmpty { needsResync = true }
        if wrote { failures += bump(programmer) }
        return (failures, wrote)
    }

    /// A full compile against the maps as they are.
    private mutating func resync(to new: PolicyInputs, programmer: any DatapathProgrammer, logger: Logger,
                                 between: (PolicyEngine) -> [ReconcileFailure]) -> (failures: [ReconcileFailure], wrote: Bool) {
        let programmedPolicy: Set<PolicyMapKey>, programmedIPCache: [IPNetwork: IPCacheEntry]
        let endpointIDs: [IPAddress: EndpointID], identities: [Identity: UInt64]
        do {
            programmedPolicy = try programmer.programmedPolicy()
            programmedIPCache = try programmer.programmedIPCache()
            identities = try programmer.programmedIdentities()
            endpointIDs = try programmer.programmedEndpoints().mapValues(\.policyID)
        } catch {
            needsResync = true
            return ([ReconcileFailure(object: "policy", error: "cannot read the programmed policy and ipcache: \(error)")], false)
        }
        let pods = Array(new.pods.values)
        if !started {
            let adoption = PolicyAdoption(ipcache: programmedIPCache, policy: programmedPolicy, identities: identities,
                                          endpointIDs: endpointIDs, pods: pods)
            let clock = ContinuousClock()
            let began = clock.now
            engine = PolicyEngine(localNode: localNode, policies: Array(new.policies.values), pods: pods,
                                  namespaces: Array(new.namespaces.values), nodes: Array(new.nodes.values),
                                  adopting: adoption)
            let took = clock.now - began
            logger.info("policy compiled", metadata: [
                "compile.ms": "\(Self.milliseconds(took))",
                "policies": "\(new.policies.count)", "pods": "\(pods.count)",
                "identities.label": "\(engine.identityCount.label)", "identities.cidr": "\(engine.identityCount.cidr)",
                "policy.entries": "\(engine.policyMap.count)", "ipcache.entries": "\(engine.ipcache.count)",
                "endpoints.kept": "\(adoption.endpointIDs.count)"])
        } else {
            for change in new.changes(from: inputs) { _ = engine.apply(change) }
        }
        inputs = new
        started = true
        needsResync = false
        let diff = PolicyDiff.between(programmedPolicy: programmedPolicy, programmedIPCache: programmedIPCache,
                                      wantedPolicy: engine.policyMap, wantedIPCache: engine.ipcache,
                                      programmedIdentities: identities, wantedIdentities: engine.identityFingerprints)
        let clock = ContinuousClock()
        let began = clock.now
        var (failures, wrote) = write(diff, programmer: programmer, logger: logger, between: between)
        if !diff.isEmpty {
            logger.info("policy: maps brought to the compiled state: \(diff)",
                        metadata: ["write.ms": "\(Self.milliseconds(clock.now - began))"])
        }
        if !failures.isEmpty { needsResync = true }
        if wrote { failures += bump(programmer) }
        return (failures, wrote)
    }

    /// Writes one diff in its order; stops at the first failure (what is left is for the resync).
    private mutating func write(_ diff: PolicyDiff, programmer: any DatapathProgrammer, logger: Logger,
                                between: (PolicyEngine) -> [ReconcileFailure]) -> (failures: [ReconcileFailure], wrote: Bool) {
        var wrote = false
        func attempt(_ op: DatapathOperation) -> ReconcileFailure? {
            do {
                switch op {
                case .upsertPolicy(let k): try programmer.upsertPolicy(k)
                case .upsertIPCache(let p, let e): try programmer.upsertIPCache(prefix: p, entry: e)
                case .deleteIPCache(let p): try programmer.deleteIPCache(prefix: p)
                case .deletePolicy(let k): try programmer.deletePolicy(k)
                }
            } catch {
                return ReconcileFailure(object: "\(op)", error: "\(error)")
            }
            writes += 1
            wrote = true
            return nil
        }
        func record(_ id: Identity, _ fingerprint: UInt64?) -> ReconcileFailure? {
            do {
                if let fingerprint { try programmer.upsertIdentity(id, fingerprint: fingerprint) }
                else { try programmer.deleteIdentity(id) }
            } catch {
                return ReconcileFailure(object: "identity \(id)", error: "\(error)")
            }
            return nil
        }
        // The identities' record first and last: a restart in between finds every number in
        // use recorded (a stale extra record only keeps a number from being reused).
        for (id, f) in diff.identitiesBorn.sorted(by: { $0.key < $1.key }) {
            if let failure = record(id, f) { return ([failure], wrote) }
        }
        let additions = diff.policyUpserts.map { DatapathOperation.upsertPolicy($0) }
            + diff.ipcacheUpserts.map { .upsertIPCache($0.prefix, $0.entry) }
        let removals = diff.ipcacheDeletes.map { DatapathOperation.deleteIPCache($0) }
            + diff.policyDeletes.map { .deletePolicy($0) }
        for op in additions {
            if let f = attempt(op) { return ([f], wrote) }
        }
        let f = between(engine)
        if !f.isEmpty { return (f, wrote) }
        for op in removals {
            if let f = attempt(op) { return ([f], wrote) }
        }
        for id in diff.identitiesDied {
            if let failure = record(id, nil) { return ([failure], wrote) }
        }
        if wrote {
            logger.debug("policy: maps written", metadata: [
                "policy.upserts": "\(diff.policyUpserts.count)", "policy.deletes": "\(diff.policyDeletes.count)",
                "ipcache.upserts": "\(diff.ipcacheUpserts.count)", "ipcache.deletes": "\(diff.ipcacheDeletes.count)"])
        }
        return ([], wrote)
    }

    static func milliseconds(_ d: Duration) -> String {
        let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        return String(format: "%.1f", ms)
    }

    private func bump(_ programmer: any DatapathProgrammer) -> [ReconcileFailure] {
        do { try programmer.bumpPolicyGeneration() } catch {
            return [ReconcileFailure(object: "policy generation", error: "\(error)")]
        }
        return []
    }
}
