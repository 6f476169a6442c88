// Small C shims for what Swift's Glibc module does not expose (gettid, pipe2, dl_iterate_phdr,
// a frame-pointer walk), plus the recorder's hot path: per-thread ring buffers of fixed 64-byte
// slots, appended to without locks by the owning thread and drained by the flusher (TangleTrace's
// Recorder.swift) under one writer lock. See docs/trace-format.md.
#ifndef TANGLE_TRACE_SUPPORT_H
#define TANGLE_TRACE_SUPPORT_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The kernel thread id of the calling thread.
pid_t tangle_gettid(void);

/// pipe2(2): `flags` is O_CLOEXEC / O_NONBLOCK / O_DIRECT.
int tangle_pipe2(int fds[2], int flags);

// ---- Recorder ring buffers ----------------------------------------------------------------------

/// One slot of a thread's ring. An event takes one slot, plus ceil(npcs / 8) slots of return
/// addresses when it carries a stack.
///   w[0] time (CLOCK_MONOTONIC ns)  w[1] object  w[2] a  w[3] b  w[4] c  w[5] seq
///   w[6] kind | result << 16 | npcs << 24 | text id << 32     w[7] stack hash (0 = no stack)
/// A record with a stack hash but npcs = 0 names a stack this thread sent earlier to the same file.
typedef struct tangle_slot { uint64_t w[8]; } tangle_slot;

/// Frames a remembered walk may have visited (the default depth is 16).
#define TANGLE_WALK_MEMO_FRAMES 40

/// What the last frame-pointer walk of a thread read: from frame `fp0`, the saved frame pointer
/// and return address of each frame it visited, and what it computed from them. The walk is a
/// function of those words alone (and of the thread's stack range, `skip` and `max`), so when a
/// walk starts at the same `fp0` and every one of those words is still the same, its result is the
/// same — and the words can be checked with independent loads, where the walk chases them one by
/// one.
typedef struct tangle_walk_memo {
    uintptr_t fp0;                // 0: empty
    int busy;                     // being used or rewritten (a signal handler's walk leaves it alone)
    int skip, max, frames, n;     // frames: visited (2 words read each); n: addresses kept
    uint64_t hash;
    // Frame i's two words as they sit on the stack: [2i] its saved frame pointer, [2i + 1] its
    // return address (so one 16-byte compare checks a frame).
    uintptr_t words[2 * TANGLE_WALK_MEMO_FRAMES] __attribute__((aligned(16)));
} tangle_walk_memo;

typedef struct tangle_tbuf {
    // What the owning thread writes on every event shares one cache line (the drainer reads only
    // `head` there, once per drain round), so the drainer's reads of the fields below never miss.
    uint64_t head;                // written by the owning thread only (atomics via __atomic builtins)
    uint64_t seq;                 // next sequence number (owner only)
    uint64_t cached_tail;         // the owner's last view of `tail` (re-read only when short of room)
    uint64_t dropped;             // events that could not be recorded (owner increments)
    char pad0[32];
    uint64_t tail;                // written by the drainer only (under the writer lock)
    char pad1[56];
    struct tangle_tbuf *next;     // the global list (under the writer lock)
    tangle_slot *slots;
    uint64_t mask;                // nslots - 1
    int exited;                   // the thread has exited: drain, then free
    pid_t tid;
    uintptr_t stack_lo, stack_hi; // the thread's stack range, for the frame-pointer walk
    // Stacks this thread has already sent to the writer (hash, direct-mapped; owner only): a known
    // stack is recorded as its hash alone, so a hot call site costs one slot, not three.
    uint64_t known_generation;    // tangle_trace_stack_generation when `known` was last valid
    uint64_t known[64];
    // The last stack walk (owner only; see `walk_memo` in trace_support.c).
    tangle_walk_memo last_walk;
} tangle_tbuf;

/// Frames captured when an event asks for a stack (1...64; TANGLE_STACK_DEPTH, default 16).
extern int tangle_trace_stack_depth;
/// Recorder state: 0 not started, 1 running, 2 must restart (forked child), 3 closed, 4 failed.
extern int tangle_trace_state;
/// The cached pid (refreshed in a forked child).
extern pid_t tangle_trace_pid;
/// Incremented in every forked child (pthread_atfork).
extern uint64_t tangle_trace_fork_generation;
/// Bumped whenever a new trace file starts (its writer knows no stacks yet): every thread then
/// forgets which stacks it sent, and sends each one's return addresses again on first use.
extern uint64_t tangle_trace_stack_generation;
void tangle_trace_forget_stacks(void);

/// Appends one event to the calling thread's buffer (creating and registering it on first use).
/// `meta` packs what is not an argument of the event (`tangle_append_meta`), so that every
/// parameter travels in a register: the kind (bits 0–15), the result (16–23), whether to capture
/// the stack (bit 24), `skip` (25–31: how many return addresses to leave out, counted from the one
/// into this function's caller — 0 keeps the caller's own call site), and a text id (32–63).
/// Returns 0 (recorded), 1 (recorded; the buffer is over half full), -1 (the buffer is full:
/// nothing recorded, drain and retry), -2 (no memory: counted as dropped).
int tangle_trace_append(uint64_t meta, uint64_t object, uint64_t a, uint64_t b, uint64_t c);
/// `tangle_trace_append` for an event whose time was taken earlier (`tangle_trace_now`), before
/// what it records happened: a spawn or fork recorded once the child's pid is known, but timed
/// before the child could record anything.
int tangle_trace_append_at(uint64_t meta, uint64_t time, uint64_t object, uint64_t a, uint64_t b, uint64_t c);
/// `tangle_trace_append` for an event recorded without a stack (`meta` has no TANGLE_APPEND_STACK):
/// the same record, through a path that keeps no room for a walk (the release of a lock pair).
int tangle_trace_append_plain(uint64_t meta, uint64_t object, uint64_t a, uint64_t b, uint64_t c);
/// The recorder's clock now, as rings hold it (TSC ticks or CLOCK_MONOTONIC ns).
uint64_t tangle_trace_now(void);
#define TANGLE_APPEND_STACK (1ull << 24)
static inline uint64_t tangle_append_meta(uint16_t kind, uint8_t result, int stack, int skip, uint32_t text) {
    return (uint64_t)kind | ((uint64_t)result << 16) | (stack ? TANGLE_APPEND_STACK : 0)
        | ((uint64_t)(skip & 0x7F) << 25) | ((uint64_t)text << 32);
}

/// A read prefetch hint (the drainer reads slots the recording thread just wrote on another core).
static inline void tangle_prefetch(const void *p) { __builtin_prefetch(p, 0, 0); }

/// The calling thread's buffer, or NULL when it has recorded nothing yet.
tangle_tbuf *tangle_trace_current(void);
/// A ring that is not a thread's: a Swift task's (Tangle's TaskParticipant), recorded under `tid`
/// (a synthetic id outside the kernel's range), `slots` records (a power of two, >= 64). Registered
/// with the writer like a thread's; drained and freed after `tangle_trace_ring_end`. Threads write
/// it one at a time, each between `tangle_trace_ring_use` and `tangle_trace_ring_restore`.
tangle_tbuf *tangle_trace_ring_create(pid_t tid, uint64_t slots);
/// No more records will go to `b`: the writer drains it, then frees it.
void tangle_trace_ring_end(tangle_tbuf *b);
/// Makes `b` the calling thread's ring (with the thread's stack range, for the stack walk) and
/// returns the thread's own, created if needed, to give back to `tangle_trace_ring_restore`.
tangle_tbuf *tangle_trace_ring_use(tangle_tbuf *b);
void tangle_trace_ring_restore(tangle_tbuf *own);
/// Moves the calling thread's drop count out (returns it and zeroes it).
uint64_t tangle_trace_take_dropped(void);
void tangle_trace_count_drop(void);

/// The writer lock (a plain pthread mutex, re-initialised in a forked child).
void tangle_trace_lock(void);
void tangle_trace_unlock(void);
/// Tries to take the writer lock for up to `ms` milliseconds: 1 taken, 0 not.
int tangle_trace_trylock_ms(int ms);
/// Acquire-load of a buffer's head; release-store of its tail (drainer side).
uint64_t tangle_tbuf_head(const tangle_tbuf *b);
void tangle_tbuf_set_tail(tangle_tbuf *b, uint64_t tail);
/// The head of the buffer list (call with the writer lock held).
tangle_tbuf *tangle_trace_buffers(void);
/// Unlinks and frees exited, fully drained buffers (writer lock held).
void tangle_trace_reap(void);
/// The sum of every thread buffer's head: how many slots have been recorded in all, for telling
/// whether threads are recording (under the writer lock; drops when an exited thread is reaped).
uint64_t tangle_trace_heads(void);
/// Drops every buffer's pending records (writer lock held).
void tangle_trace_discard_all(void);

/// The flusher's wake-up: posted when a buffer crosses half full; waits up to `ms`.
void tangle_trace_wake(void);
void tangle_trace_wait(int ms);

/// Installs the pthread_atfork child handler (once).
void tangle_trace_install_atfork(void);

/// Installs handlers for SIGTERM and SIGINT where their action is the default: the handler calls
/// `fn(sig)`, then restores the default action and re-raises. Returns a bit mask of what was installed.
int tangle_trace_install_signals(void (*fn)(int sig));
/// Registers `fn` with on_exit(3).
int tangle_trace_on_exit(void (*fn)(int status, void *arg));

/// CLOCK_MONOTONIC in ns.
uint64_t tangle_now_ns(void);

// ---- The ring's clock ----------------------------------------------------------------------------
// Where the kernel itself derives CLOCK_MONOTONIC from the TSC (clocksource "tsc", constant and
// nonstop TSC), the hot path stores raw TSC ticks (rdtsc: ~5 ns in line, against 23 ns for
// clock_gettime, whose lfence serialises) and the writer converts them to CLOCK_MONOTONIC ns by
// interpolating between (TSC, CLOCK_MONOTONIC) pairs it samples at every drain. Elsewhere, or with
// TANGLE_CLOCK=monotonic, the ring holds CLOCK_MONOTONIC ns directly.

/// 1 when ring times are TSC ticks. Decided once per process by tangle_trace_clock_init (before the
/// first record; a forked child inherits it).
extern int tangle_trace_clock_tsc;
int tangle_trace_clock_init(void);
/// A (TSC, CLOCK_MONOTONIC ns) pair: the best (narrowest) of three rdtsc–clock_gettime–rdtsc
/// brackets, TSC at the bracket's middle. Returns the bracket's width in ticks.
uint64_t tangle_clock_pair(uint64_t *tsc, uint64_t *ns);

// ---- Stacks ------------------------------------------------------------------------------------

/// Frame-pointer walk from the caller of this function: up to `max` return addresses into `pcs`,
/// leaving out the first `skip`, never reading outside [lo, hi). Stops at the first invalid frame
/// pointer. Returns the number stored.
int tangle_fp_walk(uintptr_t *pcs, int max, int skip, uintptr_t lo, uintptr_t hi);

/// The calling thread's stack range (pthread_getattr_np). 0 on success.
int tangle_thread_stack_range(uintptr_t *lo, uintptr_t *hi);

/// One loaded module, as dl_iterate_phdr sees it.
typedef struct tangle_module {
    const char *path;             // valid during the callback only
    const uint8_t *build_id;      // NULL when there is none
    size_t build_id_len;
    uint64_t bias;
    uint64_t lo, hi;              // executable PT_LOAD range [lo, hi) (runtime addresses)
} tangle_module;

/// Calls `fn` for each loaded module. Returns the dl_iterate_phdr "adds" counter (grows when a
/// module is loaded), for detecting dlopen cheaply.
uint64_t tangle_modules(void (*fn)(const tangle_module *m, void *ctx), void *ctx);
/// The "adds" counter alone.
uint64_t tangle_module_adds(void);

/// Test children: when TANGLE_TRACE_TEST_CHILD is set, a constructor calls this weak function
/// (defined by the TangleTraceTests target) before main and exits with what it returns.
extern int tangle_trace_test_child(const char *name) __attribute__((weak));

#ifdef __cplusplus
}
#endif
#endif
