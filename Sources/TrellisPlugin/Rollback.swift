/// Undo steps of a half-done ADD, run in reverse order unless the ADD succeeds.
///
/// The shape of the reference plugins' `success := false; defer { if !success { undo } }`:
/// every step that changes the node registers its inverse right after it succeeds, so a failure
/// at any point leaves no veth, no address and no allocation behind.
final class Rollback {
    private var steps: [(String, () throws -> Void)] = []
    private var committed = false

    func onFailure(_ what: String, _ step: @escaping () throws -> Void) {
        steps.append((what, step))
    }

    /// The ADD succeeded: keep everything.
    func commit() { committed = true }

    /// Undo what was done; failures of undo steps are reported, not thrown, so every step runs.
    func runIfNeeded(log: (String) -> Void) {
        guard !committed else { return }
        for (what, step) in steps.reversed() {
            do { try step() } catch { log("rollback: \(what) failed: \(error)") }
        }
        steps.removeAll()
    }
}
