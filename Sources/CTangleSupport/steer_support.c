// Directed replay: see steer_support.h. Plain C so that the check costs the hot paths nothing and
// the plan is read before main (a constructor), in every process the run starts (spawned children
// inherit TANGLE_STEER; forked ones inherit the mapping).
#define _GNU_SOURCE
#include "steer_support.h"
#include "trace_support.h"
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int tangle_steer_active = 0;

static tangle_steer_plan *plan = NULL;
/// Per module of the plan: its load bias in this process (~0: not loaded).
static uint64_t module_bias[TANGLE_STEER_MAX_MODULES];

size_t tangle_steer_plan_size(uint32_t nranges) {
    return sizeof(tangle_steer_plan) + (size_t)nranges * 2 * sizeof(uint64_t);
}

char *tangle_steer_module_path(tangle_steer_plan *p, uint32_t i) { return p->modules[i]; }
tangle_steer_point *tangle_steer_point_at(tangle_steer_plan *p, uint32_t i) { return &p->points[i]; }
tangle_steer_frame *tangle_steer_frame_at(tangle_steer_point *p, uint32_t j) { return &p->frames[j]; }
uint64_t *tangle_steer_range_at(tangle_steer_plan *p, uint32_t i) { return p->ranges[i]; }

uint64_t tangle_steer_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int find_bias(struct dl_phdr_info *info, size_t size, void *ctx) {
    (void)size; (void)ctx;
    const char *path = info->dlpi_name;
    char exe[TANGLE_STEER_PATH_MAX];
    if (!path || !*path) {  // the main program
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) return 0;
        exe[n] = 0;
        path = exe;
    }
    for (uint32_t i = 0; i < plan->nmodules && i < TANGLE_STEER_MAX_MODULES; i++) {
        // The same file name is enough: the ranges were resolved in the binary COMMAND runs.
        if (module_bias[i] == ~0ull && strcmp(base_name(plan->modules[i]), base_name(path)) == 0)
            module_bias[i] = info->dlpi_addr;
    }
    return 0;
}

__attribute__((constructor)) static void tangle_steer_bootstrap(void) {
    const char *path = getenv("TANGLE_STEER");
    if (!path || !*path) return;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(tangle_steer_plan)) { close(fd); return; }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return;
    tangle_steer_plan *pl = p;
    if (pl->magic != TANGLE_STEER_MAGIC || pl->npoints == 0 || pl->npoints > TANGLE_STEER_MAX_POINTS
        || pl->nmodules > TANGLE_STEER_MAX_MODULES || tangle_steer_plan_size(pl->nranges) > (size_t)st.st_size) {
        munmap(p, (size_t)st.st_size);
        return;
    }
    plan = pl;
    for (int i = 0; i < TANGLE_STEER_MAX_MODULES; i++) module_bias[i] = ~0ull;
    dl_iterate_phdr(find_bias, NULL);
    tangle_steer_active = 1;
}

/// True when `pc` (a return address) lies in one of the frame's ranges: `pc - 1` is inside the call.
static int frame_matches(const tangle_steer_frame *f, uintptr_t pc) {
    if (f->module >= TANGLE_STEER_MAX_MODULES || module_bias[f->module] == ~0ull) return 0;
    uint64_t a = (uint64_t)pc - 1 - module_bias[f->module];
    for (uint32_t r = 0; r < f->nranges; r++) {
        uint64_t i = (uint64_t)f->first_range + r;
        if (i >= plan->nranges) return 0;
        if (a >= plan->ranges[i][0] && a < plan->ranges[i][1]) return 1;
    }
    return 0;
}

/// True when the point's frames match consecutive return addresses of the walk.
static int point_matches(const tangle_steer_point *pt, const uintptr_t *pcs, int n) {
    uint32_t nf = pt->nframes;
    if (nf == 0 || nf > TANGLE_STEER_MAX_FRAMES) return 0;
    for (int d = 0; d + (int)nf <= n; d++) {
        uint32_t j = 0;
        while (j < nf && frame_matches(&pt->frames[j], pcs[d + j])) j++;
        if (j == nf) return 1;
    }
    return 0;
}

__attribute__((noinline)) void tangle_steer_arrive(void) {
    tangle_steer_plan *pl = plan;
    if (!pl || __atomic_load_n(&pl->state, __ATOMIC_ACQUIRE) != 0) return;
    uintptr_t pcs[64], lo = 0, hi = 0;
    if (tangle_thread_stack_range(&lo, &hi) != 0) return;
    // Our own frame-pointer walk from this function's frame (taking its address gives it one, also
    // where the compiler would omit frame pointers): the first return address is our caller's.
    int n = 0;
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    while (n < 64 && fp >= lo && fp <= hi - 16 && (fp & 7) == 0) {
        const uintptr_t *frame = (const uintptr_t *)fp;
        if (frame[1] < 4096) break;
        pcs[n++] = frame[1];
        if (frame[0] <= fp) break;
        fp = frame[0];
    }
    uint64_t me = ((uint64_t)(uint32_t)getpid() << 32) | (uint32_t)syscall(SYS_gettid);
    for (uint32_t i = 0; i < pl->npoints; i++) {
        tangle_steer_point *pt = &pl->points[i];
        uint64_t owner = __atomic_load_n(&pt->owner, __ATOMIC_ACQUIRE);
        if (owner == me) return;  // this thread already had its rendezvous
        if (owner != 0 || !point_matches(pt, pcs, n)) continue;
        uint64_t expected = 0;
        if (!__atomic_compare_exchange_n(&pt->owner, &expected, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        uint64_t now = tangle_steer_now();
        __atomic_store_n(&pt->arrived_ns, now, __ATOMIC_RELEASE);
        uint32_t arrived = __atomic_add_fetch(&pl->arrivals, 1, __ATOMIC_ACQ_REL);
        if (arrived >= pl->npoints) {
            __atomic_store_n(&pl->complete_ns, now, __ATOMIC_RELEASE);
            uint32_t waiting = 0;
            __atomic_compare_exchange_n(&pl->state, &waiting, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
            return;
        }
        // Wait for the others, bounded. A polling sleep: simple, works across processes, and the
        // millisecond it may add is nothing next to the bound.
        uint64_t deadline = now + pl->timeout_ns;
        struct timespec ms = {0, 1000000};
        while (__atomic_load_n(&pl->state, __ATOMIC_ACQUIRE) == 0 && tangle_steer_now() < deadline)
            nanosleep(&ms, NULL);
        uint32_t waiting = 0;
        __atomic_compare_exchange_n(&pl->state, &waiting, 2, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        return;
    }
}
