import TrellisNet

extension IPNetwork {
    /// The pods' gateway in this pod subnet when the config names none: the first address after
    /// the network address. The agent writes its conflist's ranges without a `gateway`, so the
    /// plugin configures this address (on the bridge or the host device) and the agent's
    /// datapath sends ICMP errors to pods from it: both sides must agree, hence one rule.
    /// nil only for a subnet without a second address (a /32 or /128 at the top of the space).
    public var defaultGateway: IPAddress? { first.advanced(by: 1) }
}
