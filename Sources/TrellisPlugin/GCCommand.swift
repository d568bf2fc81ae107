import TrellisCNI
import TrellisIPAM
import TrellisNetlink

/// GC (CNI 1.1): release every allocation whose attachment is not in
/// `cni.dev/valid-attachments`, and remove the host veth such an attachment may have left.
func cmdGC(conf: NetConf, log: (String) -> Void) throws(CNIError) {
    guard let valid = conf.validAttachments else {
        throw .invalidConfig("cni.dev/valid-attachments: GC needs the list of attachments to keep")
    }
    let keep = Set(valid.map { AttachmentKey(containerID: $0.containerID, ifname: $0.ifname) })
    let store = try conf.openIPAM()
    let released: [Allocation]
    do { released = try store.releaseAll(except: keep) } catch { throw .ipam(error) }
    do {
        let host = try Netlink()
        for allocation in released {
            let name = HostVethName.of(containerID: allocation.key.containerID, ifName: allocation.key.ifname)
            if try host.deleteLink(named: name) { log("gc: removed \(name) of \(allocation.key.containerID)") }
        }
    } catch {
        throw .datapath(error)
    }
}
