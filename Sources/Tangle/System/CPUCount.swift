import CTangleSupport
import Glibc

/// How many CPUs this process may really use: the CPUs of its affinity mask (`sched_getaffinity`,
/// what `taskset` sets), further limited by a cgroup v2 CPU quota (`cpu.max` = quota/period,
/// rounded up) of its cgroup or any ancestor — so a container limited to half a core gets 1, not 64.
/// Never less than 1. The default worker count of `Pool`.
public enum CPUCount {
    /// The usable CPU count of this process, now.
    public static func available() -> Int {
        available(procSelfCgroup: "/proc/self/cgroup", cgroupRoot: "/sys/fs/cgroup")
    }

    /// Same, reading the cgroup membership and hierarchy from other paths (for tests).
    public static func available(procSelfCgroup: String, cgroupRoot: String) -> Int {
        var count = affinityCount() ?? onlineCount()
        if let quota = cgroupQuota(procSelfCgroup: procSelfCgroup, cgroupRoot: cgroupRoot) {
            count = min(count, quota)
        }
        return max(count, 1)
    }

    /// CPUs in the affinity mask, or nil when it cannot be read.
    public static func affinityCount() -> Int? {
        let n = tangle_affinity_count()
        return n > 0 ? Int(n) : nil
    }

    /// CPUs online (`sysconf(_SC_NPROCESSORS_ONLN)`).
    public static func onlineCount() -> Int {
        max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1)
    }

    /// The tightest cgroup v2 quota (CPUs, rounded up, ≥ 1) on the path from this process's cgroup
    /// up to the root, or nil when there is none ("max") or no cgroup v2.
    public static func cgroupQuota(procSelfCgroup: String, cgroupRoot: String) -> Int? {
        guard let membership = FD.readFile(procSelfCgroup) else { return nil }
        // cgroup v2: the line "0::/some/path".
        var relative: Substring?
        for line in membership.split(separator: "\n") where line.hasPrefix("0::") {
            relative = line.dropFirst(3)
        }
        guard let relative else { return nil }
        var components = relative.split(separator: "/").map(String.init)
        var best: Int?
        while true {
            let dir = components.isEmpty ? cgroupRoot : cgroupRoot + "/" + components.joined(separator: "/")
            if let text = FD.readFile(dir + "/cpu.max"), let q = parseCPUMax(text) {
                best = min(best ?? q, q)
            }
            if components.isEmpty { break }
            components.removeLast()
        }
        return best
    }

    /// Parses the contents of a cgroup v2 `cpu.max` file ("quota period", or "max period"): the
    /// quota in CPUs rounded up (≥ 1), or nil for "max" or unreadable text.
    public static func parseCPUMax(_ text: String) -> Int? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
        guard fields.count >= 1, fields[0] != "max", let quota = Int(fields[0]), quota > 0 else { return nil }
        let period = fields.count >= 2 ? (Int(fields[1]) ?? 100_000) : 100_000
        guard period > 0 else { return nil }
        return max((quota + period - 1) / period, 1)
    }

    /// Restricts the calling thread (and the processes it starts afterwards) to `cpus` — what
    /// `taskset -c` does. True on success.
    @discardableResult
    public static func setAffinity(_ cpus: [Int]) -> Bool {
        let c = cpus.map { Int32($0) }
        return c.withUnsafeBufferPointer { tangle_set_affinity($0.baseAddress, Int32($0.count)) } == 0
    }
}
