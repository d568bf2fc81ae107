import TrellisNet

/// Allocations of one network, persisted in a directory (`<dataDir>/<networkName>/`).
///
/// Each plugin process makes its own store; every call is one transaction under an exclusive
/// `flock` on `<directory>/lock`, so concurrent processes never hand out an address twice, and
/// the state file is replaced atomically, so a crash leaves either the old or the new state.
public final class IPAMStore: Sendable {
    public let directory: String
    private let files: StateFiles

    /// The path of the JSON state file.
    public var statePath: String { files.statePath }

    /// Creates the directory (mode 0700, parents included) when it is missing.
    public init(directory: String) throws(IPAMError) {
        var dir = directory
        while dir.count > 1, dir.hasSuffix("/") { dir.removeLast() }
        self.directory = dir
        files = StateFiles(directory: dir)
        try files.createDirectory()
    }

    /// One address per range, atomically for all ranges: on any error nothing is written.
    /// Idempotent: an existing allocation for the key is returned as it is, with isNew=false.
    public func allocate(_ key: AttachmentKey, ranges: [IPAMRange], reserved: [IPNetwork])
        throws(IPAMError) -> (allocation: Allocation, isNew: Bool) {
        guard !ranges.isEmpty else { throw .invalidRange("no range to allocate from") }
        for r in ranges { try r.validate() }
        let files = self.files
        return try files.withLock(exclusive: true) { () throws(IPAMError) -> (allocation: Allocation, isNew: Bool) in
            var state = try files.load()
            if let existing = state.allocations.first(where: { $0.key == key }) {
                return (existing, false)
            }
            var used = state.allocations.flatMap { $0.addresses.map(\.address) }
            let gateways = ranges.compactMap(\.gateway)
            var allocation = Allocation(key: key, addresses: [], gateways: [])
            var cursors = state.cursors
            for range in ranges {
                let cursorKey = range.subnet.description
                let address = try pickAddress(in: range, cursor: cursors[cursorKey], used: used,
                                              reserved: reserved, gateways: gateways)
                used.append(address)
                cursors[cursorKey] = address
                allocation.addresses.append(IPNetwork(address: address, prefixLength: range.subnet.prefixLength)!)
                allocation.gateways.append(range.gateway)
            }
            state.allocations.append(allocation)
            state.cursors = cursors
            try files.store(state)
            return (allocation, true)
        }
    }

    /// Releases the key's addresses; nil when it had none (not an error).
    public func release(_ key: AttachmentKey) throws(IPAMError) -> Allocation? {
        let files = self.files
        return try files.withLock(exclusive: true) { () throws(IPAMError) -> Allocation? in
            var state = try files.load()
            guard let i = state.allocations.firstIndex(where: { $0.key == key }) else { return nil }
            let released = state.allocations.remove(at: i)
            try files.store(state)
            return released
        }
    }

    public func allocation(for key: AttachmentKey) throws(IPAMError) -> Allocation? {
        let files = self.files
        return try files.withLock(exclusive: false) { () throws(IPAMError) -> Allocation? in
            try files.load().allocations.first { $0.key == key }
        }
    }

    /// Every allocation, sorted by key.
    public func all() throws(IPAMError) -> [Allocation] {
        let files = self.files
        return try files.withLock(exclusive: false) { () throws(IPAMError) -> [Allocation] in
            try files.load().allocations.sorted { $0.key < $1.key }
        }
    }

    /// Garbage collection: releases every allocation whose key is not in `keep`, in one
    /// transaction; returns what was released, sorted by key.
    public func releaseAll(except keep: Set<AttachmentKey>) throws(IPAMError) -> [Allocation] {
        let files = self.files
        return try files.withLock(exclusive: true) { () throws(IPAMError) -> [Allocation] in
            var state = try files.load()
            let released = state.allocations.filter { !keep.contains($0.key) }
            guard !released.isEmpty else { return [] }
            state.allocations.removeAll { !keep.contains($0.key) }
            try files.store(state)
            return released.sorted { $0.key < $1.key }
        }
    }
}
