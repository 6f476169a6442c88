import Glibc

/// The names of this process's objects, so that every message can name them: the name the
/// program gave, or — when it gave none — a default from the creation site (`#fileID`/`#line`
/// of the initializer's caller), `queue@main.swift:42`. The trace's `*.new` event carries the same
/// name, so the analyzer's reports say it too (it ignores the line in fingerprints). A handle
/// passed to a spawned child carries its name (`RegionHandle`); a forked child inherits the table.
///
/// Errors carry object ids and are described later — often after the handle was released (a
/// child's entry point throws, its arguments go, then the runtime prints the error) — so a
/// released name stays readable among the last `retired` ones instead of being dropped at once.
enum ObjectNames {
    private static let lock = CondLock()
    nonisolated(unsafe) private static var live: [UInt64: (name: String, handles: Int)] = [:]
    nonisolated(unsafe) private static var recent: [(object: UInt64, name: String)] = []
    nonisolated(unsafe) private static var next = 0
    static let retired = 256

    /// "queue@main.swift:42": the noun, then the file (without its module) and line.
    static func defaultName(_ noun: String, fileID: String, line: Int) -> String {
        let file = fileID.split(separator: "/").last.map(String.init) ?? fileID
        return "\(noun)@\(file):\(line)"
    }

    /// The name to record and show: `given`, or the creation site's default.
    static func name(given: String?, noun: String, fileID: String, line: Int) -> String {
        if let given, !given.isEmpty { return given }
        return defaultName(noun, fileID: fileID, line: line)
    }

    /// One more handle of `object` in this process knows it as `name`.
    static func register(_ object: UInt64, _ name: String) {
        lock.lock()
        defer { lock.unlock() }
        live[object] = (name, (live[object]?.handles ?? 0) + 1)
    }

    /// A handle of `object` went away; the last one retires the name.
    static func release(_ object: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        guard let entry = live[object] else { return }
        if entry.handles > 1 { live[object] = (entry.name, entry.handles - 1); return }
        live[object] = nil
        if recent.count < retired { recent.append((object, entry.name)) } else { recent[next] = (object, entry.name) }
        next = (next + 1) % retired
    }

    static func name(of object: UInt64) -> String? {
        lock.lock()
        defer { lock.unlock() }
        if let entry = live[object] { return entry.name }
        return recent.last { $0.object == object }?.name
    }

    /// How messages name an object: "lock 'ledger'", "queue@main.swift:42" (a default name says
    /// its noun already), or "queue 4916126941186" when this process never knew its name.
    static func label(_ noun: String, _ object: UInt64) -> String {
        guard let name = name(of: object) else { return "\(noun) \(object)" }
        return isDefault(name) ? name : "\(noun) '\(name)'"
    }

    /// A name of the form `noun@file.swift:line`.
    static func isDefault(_ name: String) -> Bool {
        guard let at = name.firstIndex(of: "@"), let colon = name.lastIndex(of: ":"), at < colon else { return false }
        return !name[..<at].isEmpty && !name[name.index(after: colon)...].isEmpty
            && name[name.index(after: colon)...].allSatisfy(\.isNumber) && !name.contains(" ")
    }

    /// In a forked child only (single-threaded).
    static func reinitializeAfterFork() { lock.reinitializeAfterFork() }
}
