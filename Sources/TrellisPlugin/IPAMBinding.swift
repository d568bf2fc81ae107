import TrellisCNI
import TrellisIPAM

/// The plugin's view of its IPAM store: one state folder per network name.
extension NetConf {
    func openIPAM() throws(CNIError) -> IPAMStore {
        do { return try IPAMStore(directory: dataDir + "/" + name) }
        catch { throw .ipam(error) }
    }

    var ipamRanges: [IPAMRange] {
        ranges.map { IPAMRange(subnet: $0.subnet, rangeStart: $0.rangeStart, rangeEnd: $0.rangeEnd, gateway: $0.gateway) }
    }
}

extension CNIEnvironment {
    var attachmentKey: AttachmentKey { AttachmentKey(containerID: containerID, ifname: ifName) }
}
