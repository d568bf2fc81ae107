import TrellisCNI
import TrellisNetlink

extension CNIEnvironment {
    /// The pod's network namespace; error 4 naming CNI_NETNS when it is missing or cannot be opened.
    func openPodNamespace() throws(CNIError) -> NetworkNamespace {
        guard let path = netns else { throw .invalidEnvironment("CNI_NETNS is required for \(command.rawValue)") }
        do { return try NetworkNamespace(path: path) }
        catch { throw .invalidEnvironment("CNI_NETNS \"\(path)\": cannot open the network namespace: \(error.reason)") }
    }
}

/// Runs a command body that mixes CNI errors (kept as they are) with netlink failures
/// (reported as code 100, naming the device and the call).
func reportingDatapathErrors<T>(_ body: () throws -> T) throws(CNIError) -> T {
    do {
        return try body()
    } catch let e as CNIError {
        throw e
    } catch let e as NetlinkError {
        throw .datapath(e)
    } catch {
        throw CNIError(code: TrellisErrorCode.datapath, msg: "\(error)")
    }
}
