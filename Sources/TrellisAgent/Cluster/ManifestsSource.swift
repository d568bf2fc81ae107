#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

/// Where the reconcilers get the cluster from: a directory of manifests (the lab, tests) or
/// the Kubernetes API (later), behind the same reconcilers.
///
/// The contract: every snapshot is complete (a source yields nothing until it has listed
/// everything once, like an informer's HasSynced), because reconcilers remove whatever a
/// snapshot lacks; consecutive snapshots differ; a slow consumer only sees the newest.
public protocol ClusterSource: Sendable {
    func snapshots() -> AsyncStream<ClusterSnapshot>
    /// Tells the cluster that this node's network is up (the kubernetes source sets the Node
    /// condition NetworkUnavailable=False); the agent writes its conflist only after that.
    func markNetworkAvailable(nodeName: String) async throws
    /// Releases what the source holds (connections), once the agent stops.
    func shutdown() async
}

extension ClusterSource {
    public func markNetworkAvailable(nodeName: String) async throws {}
    public func shutdown() async {}
}

/// A fixed sequence of snapshots, for tests and for one-shot runs.
public struct StaticClusterSource: ClusterSource {
    public let items: [ClusterSnapshot]
    public init(_ items: [ClusterSnapshot]) { self.items = items }
    public func snapshots() -> AsyncStream<ClusterSnapshot> {
        AsyncStream { c in
            for s in items { c.yield(s) }
            // Left open: the agent runs until it is stopped, not until its source ends.
        }
    }
}

/// Watches `manifestsDir`: re-reads the files that changed as soon as inotify reports a
/// change in the folder, and in any case every `interval` (the files' identity: inode, size,
/// mtime, ctime), and yields a snapshot when the merged content differs from the last one.
///
/// Files: `*.yaml`, `*.yml`, `*.json` directly in the folder, in name order (a later file's
/// object of the same kind and name wins); names starting with '.' are ignored, so writers
/// can write a hidden temporary file and rename it. A file that cannot be parsed is logged
/// with its path and skipped; if it was readable before, its last good content is kept until
/// it is fixed or removed, so a half-written file never makes the agent tear down tunnels.
/// Until the folder exists nothing is yielded.
///
/// The watching runs on a thread of its own (it blocks in poll(2)), never on the cooperative
/// pool.
public final class ManifestsSource: ClusterSource {
    public let directory: String
    public let interval: Duration
    private let logger: Logger

    public init(directory: String, interval: Duration = .milliseconds(300), logger: Logger) {
        self.directory = directory
        self.interval = interval
        var l = logger
        l[metadataKey: "source.dir"] = .string(directory)
        self.logger = l
    }

    public func snapshots() -> AsyncStream<ClusterSnapshot> {
        let (stream, continuation) = AsyncStream.makeStream(of: ClusterSnapshot.self, bufferingPolicy: .bufferingNewest(1))
        let directory = self.directory, logger = self.logger
        let stopped = Locked(false)
        let intervalMs = Int32(max(1, interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000))
        let thread = Thread {
            var scanner = ManifestScanner(directory: directory, logger: logger)
            var watch = DirectoryWatch(directory: directory)
            var last: ClusterSnapshot?
            while !stopped.current {
                if let snapshot = scanner.scan(), snapshot != last {
                    last = snapshot
                    continuation.yield(snapshot)
                }
                watch.wait(milliseconds: intervalMs)
            }
            watch.close()
            continuation.finish()
        }
        thread.name = "trellis manifests"
        continuation.onTermination = { _ in stopped.withLock { $0 = true } }
        thread.start()
        return stream
    }
}

/// inotify on one folder: `wait` returns early when something in it was created, written,
/// moved or deleted, and otherwise after the timeout. Without inotify (or before the folder
/// exists) it just sleeps, and the caller's periodic scan still notices every change.
struct DirectoryWatch {
    let directory: String
    private var fd: Int32 = -1

    init(directory: String) {
        self.directory = directory
    }

    private mutating func arm() {
        guard fd < 0 else { return }
        let f = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard f >= 0 else { return }
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB)
        if inotify_add_watch(f, directory, mask) < 0 {
            Glibc.close(f)
            return
        }
        fd = f
    }

    mutating func wait(milliseconds: Int32) {
        arm()
        guard fd >= 0 else {
            usleep(UInt32(milliseconds) * 1000)
            return
        }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&p, 1, milliseconds) > 0 {
            // Drain the events: which file changed does not matter, the scan compares them all.
            // A few milliseconds more gather the rest of a burst (an editor's or a writer's
            // temp-file-and-rename) into one scan.
            usleep(5_000)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while read(fd, &buffer, buffer.count) > 0 {}
            if p.revents & Int16(POLLIN) == 0 { close() }   // the folder went away: re-arm later
        }
    }

    mutating func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}

/// One pass over the folder, remembering what each file held. Separate from the polling so
/// tests can drive it step by step.
public struct ManifestScanner {
    struct FileIdentity: Equatable {
        var device: UInt64, inode: UInt64, size: Int64, mtime: Int64, ctime: Int64
    }
    struct FileState {
        var identity: FileIdentity
        /// The last good content; nil when the file never parsed.
        var content: ManifestContent?
    }

    public let directory: String
    private let logger: Logger
    private var files: [String: FileState] = [:]
    private var missingLogged = false
    private var current: ClusterSnapshot?

    public init(directory: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    static func isManifestName(_ name: String) -> Bool {
        !name.hasPrefix(".") && (name.hasSuffix(".yaml") || name.hasSuffix(".yml") || name.hasSuffix(".json"))
    }

    /// The merged state of the folder now; nil while the folder does not exist.
    public mutating func scan() -> ClusterSnapshot? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            if !missingLogged {
                logger.warning("manifests folder does not exist (yet); waiting for it")
                missingLogged = true
            }
            return nil
        }
        if missingLogged {
            logger.info("manifests folder appeared")
            missingLogged = false
        }
        var seen = Set<String>()
        var changed = current == nil
        for name in names.sorted() where Self.isManifestName(name) {
            let path = directory + "/" + name
            var st = stat()
            guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            seen.insert(path)
            let identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                                        mtime: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                                        ctime: Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec))
            if files[path]?.identity == identity { continue }
            load(path, identity: identity)
            changed = true
        }
        for gone in files.keys where !seen.contains(gone) {
            logger.info("manifest removed", metadata: ["file.path": .string(gone)])
            files[gone] = nil
            changed = true
        }
        if changed { current = merged() }
        return current
    }

    private mutating func load(_ path: String, identity: FileIdentity) {
        let previous = files[path]?.content
        var fileLogger = logger
        fileLogger[metadataKey: "file.path"] = .string(path)
        do throws(ManifestError) {
            let text: String
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw ManifestError(path: path, reason: "cannot be read: \((error as NSError).localizedDescription)")
            }
            let content = try ManifestParser.parse(text, path: path)
            for problem in content.problems {
                fileLogger.warning("manifest object skipped: \(problem)")
            }
            fileLogger.debug("manifest read", metadata: ["objects": .stringConvertible(content.objects.count)])
            files[path] = FileState(identity: identity, content: content)
        } catch {
            if previous != nil {
                fileLogger.error("manifest file is broken, keeping its previous content until it is fixed or removed: \(error.reason)")
            } else {
                fileLogger.error("manifest file is broken and skipped: \(error.reason)")
            }
            files[path] = FileState(identity: identity, content: previous)
        }
    }

    private func merged() -> ClusterSnapshot {
        var snapshot = ClusterSnapshot.empty
        var origin: [String: String] = [:]
        var highest: UInt64?
        for path in files.keys.sorted() {
            guard let content = files[path]?.content else { continue }
            for object in content.objects {
                let id = object.kindAndName
                if let earlier = origin[id], earlier != path {
                    logger.warning("\(id) is defined in two files; the later one wins",
                                   metadata: ["file.path": .string(path), "file.earlier": .string(earlier)])
                }
                origin[id] = path
                snapshot.insert(object)
            }
            if let rv = content.highestResourceVersion {
                highest = max(highest ?? 0, rv)
            }
        }
        snapshot.revision = highest.map(String.init)
        return snapshot
    }
}
