import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// The one place raw libbpf and bpf(2) calls go through: EINTR is retried, failures become
/// `DatapathError`s naming the operation.
enum LibBPF {
    /// Runs `body`, which follows the libbpf 1.x convention (a negative errno on failure, or -1
    /// with errno set), retrying on EINTR. Returns its non-negative result.
    @discardableResult
    static func call(_ operation: @autoclosure () -> String,
                     _ body: () -> Int32) throws(DatapathError) -> Int32 {
        while true {
            let rc = body()
            if rc >= 0 { return rc }
            let e = rc == -1 && errno != 0 ? errno : -rc
            if e == EINTR { continue }
            throw DatapathError(operation(), errno: e)
        }
    }

    /// Like `call`, but an errno in `tolerated` is returned (negated) instead of thrown, for
    /// ensure-style operations (EEXIST on create, ENOENT on delete).
    static func call(_ operation: @autoclosure () -> String, tolerating tolerated: Set<Int32>,
                     _ body: () -> Int32) throws(DatapathError) -> Int32 {
        do {
            return try call(operation(), body)
        } catch {
            if tolerated.contains(error.code) { return -error.code }
            throw error
        }
    }

    /// The number of possible CPUs: per-CPU map values hold one slot per possible CPU.
    static let possibleCPUs: Int = {
        let n = libbpf_num_possible_cpus()
        return n > 0 ? Int(n) : 1
    }()

    /// Collects libbpf's warnings (the verifier log of a failed load, a pinned map that cannot
    /// be reused) so that they travel in the error instead of going to stderr.
    static func capturingLog<T>(_ body: () throws(DatapathError) -> T) throws(DatapathError) -> T {
        LogCapture.shared.begin()
        defer { LogCapture.shared.end() }
        do {
            return try body()
        } catch {
            let log = LogCapture.shared.text()
            if log.isEmpty { throw error }
            throw DatapathError(error.operation, code: error.code, message: error.message + "\n" + log)
        }
    }
}

/// The `sz` of a libbpf options struct: the end of its last field (libbpf's `offsetofend`).
/// libbpf rejects an options struct whose bytes past its last known field are not zero, and
/// Swift does not promise zero padding: a size ending at the last field leaves nothing to check.
func optsSize<T, F>(_: T.Type, last field: KeyPath<T, F>) -> Int {
    MemoryLayout<T>.offset(of: field)! + MemoryLayout<F>.size
}

/// libbpf's print callback is process-global: this replaces libbpf's default (stderr) once,
/// for the whole process. Captures are serialised by a mutex held from `begin` to `end`, so
/// concurrent loads each get their own messages; warnings outside a capture are written to
/// stderr as libbpf would.
final class LogCapture: @unchecked Sendable {
    static let shared = LogCapture()
    private var loadLock = pthread_mutex_t()
    private var bufferLock = pthread_mutex_t()
    private var buffer: [UInt8] = []
    private var capturing = false
    private static let limit = 64 * 1024

    private init() {
        pthread_mutex_init(&loadLock, nil)
        pthread_mutex_init(&bufferLock, nil)
        libbpf_set_print { level, format, args in
            guard level == LIBBPF_WARN,
                  let format, let args else { return 0 }
            var line = [CChar](repeating: 0, count: 1024)
            let n = vsnprintf(&line, line.count, format, args)
            guard n > 0 else { return 0 }
            let count = min(Int(n), line.count - 1)
            LogCapture.shared.append(line.prefix(count).map { UInt8(bitPattern: $0) })
            return n
        }
    }

    func begin() {
        pthread_mutex_lock(&loadLock)
        pthread_mutex_lock(&bufferLock)
        buffer.removeAll(keepingCapacity: true)
        capturing = true
        pthread_mutex_unlock(&bufferLock)
    }

    func end() {
        pthread_mutex_lock(&bufferLock)
        capturing = false
        pthread_mutex_unlock(&bufferLock)
        pthread_mutex_unlock(&loadLock)
    }

    fileprivate func append(_ bytes: [UInt8]) {
        pthread_mutex_lock(&bufferLock)
        defer { pthread_mutex_unlock(&bufferLock) }
        guard capturing else {
            bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
            return
        }
        if buffer.count < Self.limit { buffer += bytes.prefix(Self.limit - buffer.count) }
    }

    func text() -> String {
        pthread_mutex_lock(&bufferLock)
        defer { pthread_mutex_unlock(&bufferLock) }
        var s = String(decoding: buffer, as: UTF8.self)
        while s.hasSuffix("\n") { s.removeLast() }
        return s
    }
}
