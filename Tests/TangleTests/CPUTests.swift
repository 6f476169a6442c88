import Glibc
import XCTest
@testable import Tangle
import TangleTestSupport

final class CPUTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        registerTangleTestsEntryPoints()
    }

    /// cpu.max parsing: quota/period rounded up, at least 1, "max" = no limit.
    func testParseCPUMax() {
        XCTAssertEqual(CPUCount.parseCPUMax("50000 100000\n"), 1)
        XCTAssertEqual(CPUCount.parseCPUMax("100000 100000"), 1)
        XCTAssertEqual(CPUCount.parseCPUMax("150000 100000"), 2)
        XCTAssertEqual(CPUCount.parseCPUMax("400000 100000\n"), 4)
        XCTAssertEqual(CPUCount.parseCPUMax("1000 100000"), 1)
        XCTAssertNil(CPUCount.parseCPUMax("max 100000\n"))
        XCTAssertNil(CPUCount.parseCPUMax(""))
        XCTAssertNil(CPUCount.parseCPUMax("garbage"))
    }

    /// A fake cgroup v2 tree: the tightest quota from the process's cgroup up to the root wins,
    /// and never more than the affinity mask allows.
    func testCgroupQuotaFromFakeTree() throws {
        let root = makeTempDir("tangle-cgroup")
        defer { removeTree(root) }
        mkdir(root + "/a", 0o755)
        mkdir(root + "/a/b", 0o755)
        func write(_ path: String, _ text: String) {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            _ = FD.writeAll(fd, Array(text.utf8))
            close(fd)
        }
        write(root + "/self-cgroup", "0::/a/b\n")
        write(root + "/a/b/cpu.max", "max 100000\n")
        write(root + "/a/cpu.max", "150000 100000\n")
        XCTAssertEqual(CPUCount.cgroupQuota(procSelfCgroup: root + "/self-cgroup", cgroupRoot: root), 2)
        XCTAssertEqual(CPUCount.available(procSelfCgroup: root + "/self-cgroup", cgroupRoot: root),
                       min(2, CPUCount.affinityCount() ?? 2))
        write(root + "/a/b/cpu.max", "50000 100000\n")  // half a core: 1 worker, not 0
        XCTAssertEqual(CPUCount.available(procSelfCgroup: root + "/self-cgroup", cgroupRoot: root), 1)
        // cgroup v1 only (no "0::" line), or no file: no quota.
        write(root + "/v1", "4:cpu,cpuacct:/x\n")
        XCTAssertNil(CPUCount.cgroupQuota(procSelfCgroup: root + "/v1", cgroupRoot: root))
        XCTAssertNil(CPUCount.cgroupQuota(procSelfCgroup: root + "/missing", cgroupRoot: root))
    }

    /// The real count is at least 1 and at most the online CPUs.
    func testAvailableIsSane() {
        let n = CPUCount.available()
        XCTAssertGreaterThanOrEqual(n, 1)
        XCTAssertLessThanOrEqual(n, CPUCount.onlineCount())
    }

    /// Under an affinity mask of one CPU (like `taskset -c 0`), a child counts 1 CPU: a forked
    /// child that restricts itself, and a spawned child that inherits the mask of the thread that
    /// started it.
    func testAffinityMaskRestrictsCount() throws {
        let forked = ChildProcess(fork: {
            guard CPUCount.setAffinity([0]) else { CurrentProcess.exit(100) }
            CurrentProcess.exit(Int32(CPUCount.available()))
        })
        try forked.start()
        XCTAssertEqual(forked.join(timeout: .seconds(20)), .exited(1))

        var spawned: ChildProcess?
        var startError: Error?
        let t = TangleThread(name: "pinned") {
            guard CPUCount.setAffinity([0]) else { return }
            let c = ChildProcess(entryPoint: "procs.cpu-count")
            do { try c.start() } catch { startError = error }
            spawned = c
        }
        t.start()
        t.join()
        XCTAssertNil(startError)
        XCTAssertEqual(spawned?.join(timeout: .seconds(20)), .exited(1))
        // The test process itself is not restricted.
        XCTAssertEqual(CPUCount.available(), CPUCount.available(procSelfCgroup: "/proc/self/cgroup", cgroupRoot: "/sys/fs/cgroup"))
    }
}
