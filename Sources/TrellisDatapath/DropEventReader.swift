import CLibbpf
import CTrellisBPF
import TrellisDatapathLayout
import TrellisCore
#if canImport(Glibc)
import Glibc
#endif

/// Reads drop events from the `trellis_events` ring buffer. Owns its `ring_buffer*` (freed in
/// deinit). One reader per consumer: each event is delivered to the reader that consumes it.
public final class DropEventReader {
    private final class Sink {
        var events: [DatapathDropEvent] = []
    }

    private let rb: OpaquePointer
    private let sink: Sink
    private let unmanagedSink: Unmanaged<Sink>

    /// A reader of the datapath's event ring buffer.
    public convenience init(_ datapath: Datapath) throws(DatapathError) {
        try self.init(mapFD: datapath.eventsMap.fd)
    }

    /// A reader of the ring buffer map `mapFD` (e.g. a pinned `trellis_events` opened with bpf_obj_get).
    public init(mapFD: Int32) throws(DatapathError) {
        sink = Sink()
        unmanagedSink = Unmanaged.passRetained(sink)
        let cb: ring_buffer_sample_fn = { ctx, data, size in
            guard let ctx, let data, size >= MemoryLayout<trellis_drop_event>.size else { return 0 }
            let sink = Unmanaged<Sink>.fromOpaque(ctx).takeUnretainedValue()
            let raw = data.loadUnaligned(as: trellis_drop_event.self)
            sink.events.append(raw.event)
            return 0
        }
        guard let rb = ring_buffer__new(mapFD, cb, unmanagedSink.toOpaque(), nil) else {
            let e = errno
            unmanagedSink.release()
            throw DatapathError("open ring buffer \(DatapathMap.events.name)", errno: e)
        }
        self.rb = rb
    }

    deinit {
        ring_buffer__free(rb)
        unmanagedSink.release()
    }

    /// Waits up to `timeoutMs` (0: do not wait) for events and returns those that arrived.
    public func poll(timeoutMs: Int32) throws(DatapathError) -> [DatapathDropEvent] {
        try LibBPF.call("poll ring buffer \(DatapathMap.events.name)") { ring_buffer__poll(rb, timeoutMs) }
        defer { sink.events.removeAll() }
        return sink.events
    }
}
