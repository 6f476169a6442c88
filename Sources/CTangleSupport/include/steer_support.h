// Directed replay (`tangle confirm`): the runtime side of a steering plan.
//
// `tangle confirm` writes a plan file and names it in TANGLE_STEER. A constructor maps it
// (MAP_SHARED: every process of the run sees the same counters) before main and sets
// `tangle_steer_active`; without TANGLE_STEER the flag stays 0 and the only cost on the acquire and
// wait paths is one load and a never-taken branch (`if tangle_steer_active != 0`).
//
// A plan holds the predicted points of ONE finding (the acquire or the blocking call of each
// participant), each as up to TANGLE_STEER_MAX_FRAMES consecutive physical frames, each frame a
// set of module-relative address ranges that `tangle confirm` resolved from the finding's
// symbolized frames (function, file:line) in the binary about to run — so ASLR and a rebuild do not
// matter, only the source location does. A thread whose stack matches an unclaimed point claims it
// and pauses (polling, 1 ms) until every point is claimed or the plan's bound passes; then it
// proceeds. The rendezvous happens once per run (later arrivals do not pause).
#ifndef TANGLE_STEER_SUPPORT_H
#define TANGLE_STEER_SUPPORT_H
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TANGLE_STEER_MAGIC 0x52545354u  // "TSTR"
#define TANGLE_STEER_MAX_POINTS 8
#define TANGLE_STEER_MAX_FRAMES 3
#define TANGLE_STEER_MAX_MODULES 4
#define TANGLE_STEER_PATH_MAX 512

typedef struct tangle_steer_frame {
    uint32_t module;       // index into modules
    uint32_t first_range;  // index into ranges
    uint32_t nranges;
    uint32_t pad;
} tangle_steer_frame;

typedef struct tangle_steer_point {
    uint64_t owner;        // (pid << 32) | tid of the thread that claimed it; 0: unclaimed
    uint64_t arrived_ns;   // CLOCK_MONOTONIC when it arrived
    uint32_t nframes;
    uint32_t pad;
    tangle_steer_frame frames[TANGLE_STEER_MAX_FRAMES];
} tangle_steer_point;

/// The plan file's layout (shared by every process of the run). `ranges` follow the header:
/// `nranges` pairs [lo, hi) of module-relative (file) addresses.
typedef struct tangle_steer_plan {
    uint32_t magic;
    uint32_t npoints;
    uint32_t nmodules;
    uint32_t nranges;
    uint64_t timeout_ns;   // how long a thread at its point waits for the others
    uint32_t arrivals;     // points claimed so far (atomic)
    uint32_t state;        // 0 waiting, 1 complete (all arrived), 2 expired (a wait timed out)
    uint64_t complete_ns;  // CLOCK_MONOTONIC when the last participant arrived
    char modules[TANGLE_STEER_MAX_MODULES][TANGLE_STEER_PATH_MAX];
    tangle_steer_point points[TANGLE_STEER_MAX_POINTS];
    uint64_t ranges[][2];
} tangle_steer_plan;

/// Set at process start when TANGLE_STEER names a usable plan: the hot paths test only this.
extern int tangle_steer_active;

/// Called by the runtime before an acquire or a blocking call when `tangle_steer_active` is set:
/// pauses (bounded) when the caller's stack is an unclaimed point of the plan.
void tangle_steer_arrive(void);

/// The byte size of a plan with `nranges` ranges (for `tangle confirm`, which writes it).
size_t tangle_steer_plan_size(uint32_t nranges);

/// Accessors for the writer (the fixed arrays and the trailing ranges, without layout guesses).
char *tangle_steer_module_path(tangle_steer_plan *p, uint32_t i);
tangle_steer_point *tangle_steer_point_at(tangle_steer_plan *p, uint32_t i);
tangle_steer_frame *tangle_steer_frame_at(tangle_steer_point *p, uint32_t j);
uint64_t *tangle_steer_range_at(tangle_steer_plan *p, uint32_t i);

/// CLOCK_MONOTONIC in ns (the clock of `arrived_ns` and `complete_ns`).
uint64_t tangle_steer_now(void);

#ifdef __cplusplus
}
#endif
#endif
