// C shims for Tangle's cross-process primitives (owned by the primitives area): futex-based locks,
// semaphores, events and sequence counters living in MAP_SHARED memory, a per-thread cache of the
// pid/tid, owner liveness checks, memfd/shm/mmap helpers. Hot paths are static inline.
#ifndef TANGLE_SYNC_SUPPORT_H
#define TANGLE_SYNC_SUPPORT_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- identity (cached; reset in a forked child by a pthread_atfork handler) ----
extern __thread int32_t tangle_sync_tid_cache __attribute__((tls_model("initial-exec")));
extern int32_t tangle_sync_pid_cache;
int32_t tangle_sync_tid_slow(void);
int32_t tangle_sync_pid_slow(void);
static inline int32_t tangle_sync_tid(void) {
    int32_t t = tangle_sync_tid_cache;
    return __builtin_expect(t != 0, 1) ? t : tangle_sync_tid_slow();
}
static inline int32_t tangle_sync_pid(void) {
    int32_t p = __atomic_load_n(&tangle_sync_pid_cache, __ATOMIC_RELAXED);
    return __builtin_expect(p != 0, 1) ? p : tangle_sync_pid_slow();
}

/// 1 when this process records a trace (a copy of Recorder.isEnabled, which is fixed per process,
/// set when a primitive is created or attached), read on the hot paths without a call.
extern int tangle_sync_tracing;

/// 1 when `pid` is a live process (not gone, not a zombie), else 0.
int tangle_sync_pid_alive(int32_t pid);

// ---- atomics on shared memory ----
static inline uint32_t tangle_atomic_load32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tangle_atomic_store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t tangle_atomic_add32(uint32_t *p, uint32_t v) { return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL); }
static inline uint32_t tangle_atomic_sub32(uint32_t *p, uint32_t v) { return __atomic_fetch_sub(p, v, __ATOMIC_ACQ_REL); }
static inline int tangle_atomic_cas32(uint32_t *p, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline int32_t tangle_atomic_load_i32(const int32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tangle_atomic_store_i32(int32_t *p, int32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int tangle_atomic_cas_i32(int32_t *p, int32_t expected, int32_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline uint64_t tangle_atomic_load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tangle_atomic_store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void tangle_cpu_relax(void) { __builtin_ia32_pause(); }

// ---- futex (process-shared) ----
/// Waits while *addr == val, at most `timeout_ns` (< 0: no limit). 0 woken/changed, ETIMEDOUT, EINTR.
int tangle_futex_wait(uint32_t *addr, uint32_t val, int64_t timeout_ns);
/// Wakes up to n waiters. Returns how many were woken.
int tangle_futex_wake(uint32_t *addr, int n);

// ---- the lock core: a futex word plus the owner, in shared memory ----
/// word: 0 free, else the owner's pid — written by the acquiring CAS itself, so a process killed at
/// any instruction leaves a word that names it and the lock can be recovered. `waiters` counts
/// threads asleep (or about to sleep) on the word, so a release only makes a futex_wake system call
/// when someone really waits.
typedef struct {
    uint32_t word;
    int32_t owner_pid;
    int32_t owner_tid;
    uint32_t depth;      // RLock recursion depth
    uint32_t waiters;
} tangle_lock_t;

/// Fast path: 1 when acquired (owner recorded), 0 when held by someone.
static inline int tangle_lock_try(tangle_lock_t *l) {
    uint32_t expected = 0;
    int32_t me = tangle_sync_pid();
    if (__atomic_compare_exchange_n(&l->word, &expected, (uint32_t)me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        l->owner_pid = me;
        l->owner_tid = tangle_sync_tid();
        return 1;
    }
    return 0;
}

/// Slow path: spins briefly, then blocks until acquired, `timeout_ns` passes (< 0: no limit) or the
/// owner is found dead. Returns 0 (acquired), ETIMEDOUT, or EOWNERDEAD (acquired from a dead owner
/// whose pid is stored in *dead_owner). `timeout_ns == 0` never blocks (checks a dead owner only).
int tangle_lock_acquire_slow(tangle_lock_t *l, int64_t timeout_ns, int32_t *dead_owner);

/// Spins up to `spins` iterations for the lock to become free and takes it. 1 acquired, 0 not.
int tangle_lock_spin(tangle_lock_t *l, int spins);

/// Releases (by anyone). Returns the previous word (0 = it was not held).
static inline uint32_t tangle_lock_release(tangle_lock_t *l) {
    l->owner_pid = 0;
    l->owner_tid = 0;
    uint32_t old = __atomic_exchange_n(&l->word, 0, __ATOMIC_SEQ_CST);
    if (__builtin_expect(__atomic_load_n(&l->waiters, __ATOMIC_SEQ_CST) != 0, 0)) tangle_futex_wake(&l->word, 1);
    return old;
}

// ---- Queue core: a byte ring shared by producers and consumers (two locks) ----
// Producers serialise on tail_lock, consumers on head_lock, so one producer and one consumer never
// contend. Each side's state sits in its own cache line, and each side caches its last read of the
// other side's index (re-read only when the ring looks full / empty). `tail` and `head` pack the
// message count (high 32 bits, mod 2^32) with the byte position (low 32 bits, in [0, 2*capacity)):
// one 64-bit store publishes a record and its count together, so a process killed at any point
// leaves the queue consistent (a half-written record was never published).
/// A queue lock: one word, 0 when free, else the owner's pid. Taking it is one CAS that also
/// names the owner, so a process killed at any instruction leaves a lock that names it (the
/// tangle_lock_t of Lock stores the owner after its CAS: a kill in between left it unrecoverable).
typedef struct {
    uint32_t word;
    uint32_t waiters;   // threads asleep (or about to sleep) on `word`
} tangle_qlock_t;

static inline int tangle_qlock_try(tangle_qlock_t *l) {
    uint32_t expected = 0;
    return __atomic_compare_exchange_n(&l->word, &expected, (uint32_t)tangle_sync_pid(), 0,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void tangle_queue_unlock(tangle_qlock_t *l) {
    __atomic_exchange_n(&l->word, 0, __ATOMIC_SEQ_CST);
    if (__builtin_expect(__atomic_load_n(&l->waiters, __ATOMIC_SEQ_CST) != 0, 0)) tangle_futex_wake(&l->word, 1);
}

/// Takes a queue lock, recovering it from a dead owner (checked every 50 ms while waiting): every
/// state change is a single published store, so the queue is consistent whatever the owner did.
void tangle_queue_lock_slow(tangle_qlock_t *l);
static inline void tangle_queue_lock(tangle_qlock_t *l) {
    if (__builtin_expect(tangle_qlock_try(l), 1)) return;
    tangle_queue_lock_slow(l);
}

typedef struct {
    // line 0: constant after creation
    uint64_t capacity;          // ring bytes, multiple of 8, <= 2^31
    uint64_t maxsize;           // 0 = the ring alone bounds the queue
    uint32_t joinable;
    uint32_t layout;            // TANGLE_QUEUE_LAYOUT
    uint8_t pad0[40];
    // line 1: producers
    tangle_qlock_t tail_lock;
    uint64_t tail;              // (messages put << 32) | write position
    uint64_t head_seen;         // producers' last read of `head`
    uint8_t pad1[40];
    // line 2: consumers
    tangle_qlock_t head_lock;
    uint64_t head;              // (messages got << 32) | read position
    uint64_t tail_seen;         // consumers' last read of `tail`
    uint8_t pad2[40];
    // line 3: getters asleep. A put wakes one only when `armed` (a getter went to sleep since the
    // last wake), so a stream of puts makes one futex_wake per sleep, not one per message.
    uint32_t not_empty_seq;
    uint32_t not_empty_armed;
    uint32_t not_empty_sleepers;   // getters inside tangle_queue_wait_nonempty
    uint8_t pad3[52];
    // line 4: putters asleep: a get wakes them all when `armed` (they may need different room).
    uint32_t not_full_seq;
    uint32_t not_full_armed;
    uint8_t pad4[56];
    // line 5: JoinableQueue (unfinished = messages put - done, mod 2^32)
    tangle_qlock_t join_lock;
    uint32_t join_seq;
    uint32_t join_waiters;
    uint64_t done;
    uint8_t pad5[40];
} tangle_queue_t;

#define TANGLE_QUEUE_LAYOUT 3u

static inline uint64_t tangle_queue_used(const tangle_queue_t *q, uint64_t tail, uint64_t head) {
    uint64_t t = (uint32_t)tail, h = (uint32_t)head;
    return t >= h ? t - h : t + 2 * q->capacity - h;
}

/// Messages in the ring for a (tail, head) pair.
static inline uint32_t tangle_queue_count_of(uint64_t tail, uint64_t head) {
    return (uint32_t)(tail >> 32) - (uint32_t)(head >> 32);
}

static inline int tangle_queue_fits(const tangle_queue_t *q, uint64_t tail, uint64_t head, uint64_t need) {
    uint64_t m = q->maxsize;
    if (m != 0 && tangle_queue_count_of(tail, head) >= m) return 0;
    uint64_t used = tangle_queue_used(q, tail, head);
    return used <= q->capacity && q->capacity - used >= need;
}

static inline uint64_t tangle_queue_offset(const tangle_queue_t *q, uint64_t word) {
    uint64_t p = (uint32_t)word;
    return p < q->capacity ? p : p - q->capacity;
}

static inline uint64_t tangle_queue_advance(const tangle_queue_t *q, uint64_t word, uint64_t need) {
    uint64_t p = (uint32_t)word + need;
    if (p >= 2 * q->capacity) p -= 2 * q->capacity;
    return ((uint64_t)((uint32_t)(word >> 32) + 1) << 32) | p;
}

#if defined(__x86_64__)
// A locked instruction (the unlock's exchange) follows: it orders earlier stores before later
// loads; only keep the compiler from moving the store past it.
#define TANGLE_QUEUE_FENCE_BEFORE_UNLOCK() __atomic_signal_fence(__ATOMIC_SEQ_CST)
#else
#define TANGLE_QUEUE_FENCE_BEFORE_UNLOCK() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif

/// tail_lock held: the ring offset where a record of `need` bytes goes, or -1 when it does not fit
/// (full by bytes or by maxsize).
static inline int64_t tangle_queue_reserve(tangle_queue_t *q, uint64_t need) {
    uint64_t t = __atomic_load_n(&q->tail, __ATOMIC_RELAXED);
    if (!tangle_queue_fits(q, t, q->head_seen, need)) {
        uint64_t h = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
        q->head_seen = h;
        if (!tangle_queue_fits(q, t, h, need)) return -1;
    }
    return (int64_t)tangle_queue_offset(q, t);
}

/// tail_lock held, record written: publishes it (one store), unlocks, wakes a sleeping getter.
static inline void tangle_queue_put_commit(tangle_queue_t *q, uint64_t need) {
    uint64_t t = __atomic_load_n(&q->tail, __ATOMIC_RELAXED);
    __atomic_store_n(&q->tail, tangle_queue_advance(q, t, need), __ATOMIC_RELEASE);
    // The store must be visible before `armed` is read (a getter arms, then reads tail). x86-64:
    // the unlock's locked exchange drains the store buffer, so it is the fence (one atomic
    // read-modify-write per put, not two).
    TANGLE_QUEUE_FENCE_BEFORE_UNLOCK();
    tangle_queue_unlock(&q->tail_lock);
    if (__builtin_expect(__atomic_load_n(&q->not_empty_armed, __ATOMIC_SEQ_CST) != 0, 0)
        && __atomic_exchange_n(&q->not_empty_armed, 0, __ATOMIC_SEQ_CST) != 0) {
        __atomic_fetch_add(&q->not_empty_seq, 1, __ATOMIC_SEQ_CST);
        tangle_futex_wake(&q->not_empty_seq, 1);
    }
}

/// head_lock held: the ring offset of the oldest record, or -1 when the queue is empty.
static inline int64_t tangle_queue_peek(tangle_queue_t *q) {
    uint64_t h = __atomic_load_n(&q->head, __ATOMIC_RELAXED);
    if ((uint32_t)h == (uint32_t)q->tail_seen) {
        uint64_t t = __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE);
        q->tail_seen = t;
        if ((uint32_t)h == (uint32_t)t) return -1;
    }
    return (int64_t)tangle_queue_offset(q, h);
}

/// head_lock held, record copied out: frees it (one store), unlocks, wakes sleeping putters (all
/// of them: they may need different room).
static inline void tangle_queue_get_commit(tangle_queue_t *q, uint64_t need) {
    uint64_t h = __atomic_load_n(&q->head, __ATOMIC_RELAXED);
    __atomic_store_n(&q->head, tangle_queue_advance(q, h, need), __ATOMIC_RELEASE);
    TANGLE_QUEUE_FENCE_BEFORE_UNLOCK();   // the unlock is the fence, as in put_commit
    tangle_queue_unlock(&q->head_lock);
    if (__builtin_expect(__atomic_load_n(&q->not_full_armed, __ATOMIC_SEQ_CST) != 0, 0)
        && __atomic_exchange_n(&q->not_full_armed, 0, __ATOMIC_SEQ_CST) != 0) {
        __atomic_fetch_add(&q->not_full_seq, 1, __ATOMIC_SEQ_CST);
        tangle_futex_wake(&q->not_full_seq, INT32_MAX);
    }
}

/// Without a lock (spinning before a wait): 1 when the queue looks non-empty.
static inline int tangle_queue_looks_nonempty(tangle_queue_t *q) {
    uint64_t h = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
    return (uint32_t)h != (uint32_t)__atomic_load_n(&q->tail, __ATOMIC_ACQUIRE);
}

/// Without a lock: 1 when a record of `need` bytes looks like it fits.
static inline int tangle_queue_looks_fits(tangle_queue_t *q, uint64_t need) {
    uint64_t h = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
    return tangle_queue_fits(q, __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE), h, need);
}

/// Before sleeping: polls for a message (or room for `need` bytes), `spins` pauses then up to
/// `yields` sched_yield calls (on 2 cores a spinner steals the CPU the other side needs). 1 when
/// the condition looks met.
int tangle_queue_poll_nonempty(tangle_queue_t *q, int spins, int yields);
int tangle_queue_poll_fits(tangle_queue_t *q, uint64_t need, int spins, int yields);

/// Messages in the queue (a consistent snapshot: head is read before tail).
static inline uint32_t tangle_queue_count(tangle_queue_t *q) {
    uint64_t h = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
    return tangle_queue_count_of(__atomic_load_n(&q->tail, __ATOMIC_ACQUIRE), h);
}

/// No lock held: sleeps until a put may have made the queue non-empty, or `timeout_ns` passes
/// (< 0: no limit). Returns at once when it is not empty. The caller re-checks under head_lock.
void tangle_queue_wait_nonempty(tangle_queue_t *q, int64_t timeout_ns);
/// After a getter that slept took a message: a put wakes only one sleeper per arming, so pass the
/// wake on when messages remain and other getters sleep.
void tangle_queue_pass_on(tangle_queue_t *q);
/// No lock held: sleeps until a get may have made room for `need` bytes, or `timeout_ns` passes.
void tangle_queue_wait_room(tangle_queue_t *q, uint64_t need, int64_t timeout_ns);

// ---- semaphores: value word + waiter count ----
typedef struct {
    uint32_t value;
    uint32_t waiters;
    uint32_t max;        // bounded semaphore limit (0 = unbounded)
    uint32_t pad;
} tangle_sem_t;

static inline int tangle_sem_try(tangle_sem_t *s) {
    uint32_t v = __atomic_load_n(&s->value, __ATOMIC_RELAXED);
    while (v > 0) {
        if (__atomic_compare_exchange_n(&s->value, &v, v - 1, 1, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return 1;
    }
    return 0;
}
/// 0 acquired, ETIMEDOUT.
int tangle_sem_acquire_slow(tangle_sem_t *s, int64_t timeout_ns);
/// 0, or EOVERFLOW when a bounded semaphore would exceed its maximum.
int tangle_sem_release(tangle_sem_t *s, uint32_t n);

// ---- memory ----
/// memfd_create(name, MFD_CLOEXEC), sized to `size`. -1 and errno on failure.
int tangle_sync_memfd(const char *name, size_t size);
/// mmap(NULL, size, RW, MAP_SHARED, fd, 0); NULL and errno on failure.
void *tangle_sync_map(int fd, size_t size);
int tangle_sync_unmap(void *p, size_t size);
/// Size of the object behind fd (fstat), or -1.
int64_t tangle_sync_fd_size(int fd);
/// 1 when fd is an open descriptor.
int tangle_sync_fd_valid(int fd);
/// shm_open + ftruncate (create, O_EXCL) or shm_open (attach). -1 and errno.
int tangle_sync_shm_create(const char *name, size_t size);
int tangle_sync_shm_attach(const char *name);
int tangle_sync_shm_unlink(const char *name);
/// ftruncate.
int tangle_sync_resize(int fd, size_t size);

// ---- pipes / sockets ----
/// pipe2(O_CLOEXEC). 0 or -1.
int tangle_sync_pipe(int fds[2]);
/// socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC). 0 or -1.
int tangle_sync_socketpair(int fds[2]);
/// poll one fd for readability: 1 ready (or hung up), 0 timeout, -1 error. timeout_ns < 0: forever.
int tangle_sync_poll_readable(int fd, int64_t timeout_ns);
/// write all bytes (retrying on EINTR / partial writes). 0 or errno. Sockets use MSG_NOSIGNAL.
int tangle_sync_write_all(int fd, const void *buf, size_t n, int is_socket);
/// SIGPIPE → SIG_IGN when it is still SIG_DFL (as Python does), so a write to a pipe with no
/// reader returns EPIPE instead of killing the process.
void tangle_sync_ignore_sigpipe(void);
/// read up to n bytes (retrying EINTR). >= 0 bytes, -1 and errno.
long tangle_sync_read(int fd, void *buf, size_t n);

int tangle_sync_errno(void);

#ifdef __cplusplus
}
#endif
#endif
