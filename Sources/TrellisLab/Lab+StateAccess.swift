import Foundation

/// Reading the lab's state: under its lock for commands that change it, without for reads.
extension Lab {
    /// Takes the lock that serialises lab commands on this state directory (DIR/.lock), saying
    /// so while another command holds it.
    func lockState() throws(LabError) -> Int32 {
        try Sys.lock(layout.lockFile) { say("waiting for another lab command on \(layout.stateDir)...") }
    }

    func lockAndLoad() throws -> (fd: Int32, state: LabState) {
        guard Sys.isDirectory(layout.stateDir) else { throw noLab() }
        let fd = try lockState()
        do {
            guard let state = try LabState.load(layout) else { throw noLab() }
            guard state.phase == .ready else {
                throw LabError("the lab in \(layout.stateDir) is not up (its `up` failed or is under way); `trellisctl lab down\(layout.stateFlag)` removes it")
            }
            return (fd, state)
        } catch {
            Sys.unlock(fd)
            throw error
        }
    }

    func loadForReading() throws -> LabState {
        guard let state = try LabState.load(layout) else { throw noLab() }
        return state
    }

    func noLab() -> LabError {
        LabError("no lab in \(layout.stateDir) (`trellisctl lab up\(layout.stateFlag)` makes one)")
    }

    func readManifests(_ file: String) throws -> ManifestSet {
        let text: String
        if file == "-" {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        } else {
            guard let t = Sys.readText(file) else { throw LabError("\(file): cannot read") }
            text = t
        }
        do {
            return try ManifestReader.parse(text, source: file == "-" ? "stdin" : file)
        } catch {
            throw LabError(error.messages.joined(separator: "\n"))
        }
    }
}
