import TrellisCNI
import TrellisCore
import TrellisJSON
import TrellisIPAM
import TrellisNetlink

/// DEL: remove the veth pair and release the addresses. Idempotent: a missing netns, a missing
/// link or a missing allocation is success, so DEL can be repeated and can follow a failed ADD.
func cmdDel(env: CNIEnvironment, conf: NetConf, log: (String) -> Void) throws(CNIError) {
    let hostVethName = HostVethName.of(containerID: env.containerID, ifName: env.ifName)
    do {
        let host = try Netlink()
        // Deleting either end of a veth removes both, and with them the pod's routes and
        // our host routes and neighbours through it.
        if try !host.deleteLink(named: hostVethName), let netnsPath = env.netns, !netnsPath.isEmpty,
           let podNS = try? NetworkNamespace(path: netnsPath) {
            let pod = try Netlink(namespace: podNS)
            if let link = try pod.link(named: env.ifName), link.kind == "veth" {
                try pod.deleteLink(named: env.ifName)
            }
        }
    } catch {
        throw .datapath(error)
    }
    // Best effort: the agent also drops endpoints whose host veth is gone, so DEL never
    // depends on it being up.
    if let socket = conf.agentSocket {
        let request = HandshakeRequest.DelRequest(containerID: env.containerID, ifname: env.ifName, hostIfname: hostVethName)
        do { try AgentClient(socketPath: socket, timeoutSeconds: 3).call(.del(request)) }
        catch { log("trellis: DEL goes on without the agent: \(error)") }
    }
    // Released after the link is gone, so an address is never on two live interfaces.
    let store = try conf.openIPAM()
    do { _ = try store.release(env.attachmentKey) }
    catch { throw .ipam(error) }
}
