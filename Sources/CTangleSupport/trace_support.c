#define _GNU_SOURCE
#include "trace_support.h"
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <elf.h>
#include <pthread.h>
#include <semaphore.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <sys/syscall.h>

pid_t tangle_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int tangle_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

uint64_t tangle_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// ---- The ring's clock ----------------------------------------------------------------------------

int tangle_trace_clock_tsc = 0;

static inline uint64_t read_tsc(void) {
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    return 0;
#endif
}

// The time stored in a ring slot (see tangle_trace_clock_tsc; never set where there is no TSC).
static inline uint64_t ring_time(void) {
    if (__builtin_expect(tangle_trace_clock_tsc, 1)) return read_tsc();
    return tangle_now_ns();
}

// 1 when the first `limit` bytes of `path` contain every string of `what` (NULL-terminated list).
static int file_has(const char *path, const char *const *what, size_t limit) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char *buf = malloc(limit + 1);
    if (!buf) { close(fd); return 0; }
    size_t n = 0;
    ssize_t r;
    while (n < limit && (r = read(fd, buf + n, limit - n)) > 0) n += (size_t)r;
    close(fd);
    buf[n] = 0;
    int found = 1;
    for (; *what && found; what++) found = strstr(buf, *what) != NULL;
    free(buf);
    return found;
}

static pthread_once_t clock_once = PTHREAD_ONCE_INIT;

static void clock_decide(void) {
#if defined(__x86_64__)
    const char *force = getenv("TANGLE_CLOCK");
    if (force && strcmp(force, "monotonic") == 0) return;
    // The kernel keeps "tsc" as the clocksource only when it found the TSC synchronised across
    // CPUs and stable; then CLOCK_MONOTONIC is a linear function of it between NTP adjustments.
    static const char *const tsc_source[] = {"tsc\n", NULL};
    static const char *const tsc_flags[] = {" constant_tsc", " nonstop_tsc", NULL};
    if (!file_has("/sys/devices/system/clocksource/clocksource0/current_clocksource", tsc_source, 64)) return;
    if (!file_has("/proc/cpuinfo", tsc_flags, 1 << 16)) return;
    tangle_trace_clock_tsc = 1;
#endif
}

int tangle_trace_clock_init(void) {
    pthread_once(&clock_once, clock_decide);
    return tangle_trace_clock_tsc;
}

uint64_t tangle_clock_pair(uint64_t *tsc, uint64_t *ns) {
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 3; i++) {
        uint64_t a = read_tsc();
        uint64_t t = tangle_now_ns();
        uint64_t b = read_tsc();
        if (b - a < best) {
            best = b - a;
            *tsc = a + (b - a) / 2;
            *ns = t;
        }
    }
    return best;
}

// ---- Stacks ------------------------------------------------------------------------------------

// The frame-pointer walk, from the frame at `fp`: up to `max` return addresses, the first `skip`
// left out, never reading outside [lo, hi). Inlined into the recorder's hot path, hashing as it goes
// (two independent multiply lanes, so the hash adds little to the walk's chain of dependent loads).
// With `memo`, it also writes down the words it reads (see tangle_walk_memo), as long as they fit.
static inline __attribute__((always_inline)) int walk_and_hash(uintptr_t fp, uintptr_t *pcs, int max, int skip,
                                                                uintptr_t lo, uintptr_t hi, uint64_t *hash,
                                                                tangle_walk_memo *memo) {
    int n = 0, frames = 0;
    uint64_t h1 = 0x9E3779B97F4A7C15ull, h2 = 0xC2B2AE3D27D4EB4Full;
    while (n < max) {
        if (fp < lo || fp > hi - 16 || (fp & 7) != 0) break;
        const uintptr_t *frame = (const uintptr_t *)fp;
        uintptr_t next = frame[0];
        uintptr_t ret = frame[1];
        if (memo && frames < TANGLE_WALK_MEMO_FRAMES) {
            memo->words[2 * frames] = next;
            memo->words[2 * frames + 1] = ret;
        }
        frames++;
        if (ret < 4096) break;
        if (skip > 0) {
            skip--;
        } else {
            pcs[n] = ret;
            if (n & 1) h2 = (h2 ^ ret) * 0xFF51AFD7ED558CCDull;
            else h1 = (h1 ^ ret) * 0xC4CEB9FE1A85EC53ull;
            n++;
        }
        if (next <= fp) break;  // the stack grows down: callers' frames sit higher
        fp = next;
    }
    uint64_t h = h1 ^ ((h2 << 31) | (h2 >> 33)) ^ (uint64_t)n;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 29;
    *hash = h ? h : 1;
    if (memo) memo->frames = frames;
    return n;
}

// The walk from `fp0` through the memo: its result when every word the last walk read is still
// what it read (then this walk would read the same words and compute the same), else -1. The
// loads do not depend on each other: their addresses are the remembered ones. A frame's two words
// are compared as one 16-byte value where SSE2 is there (x86-64 always).
static inline __attribute__((always_inline)) int walk_from_memo(const tangle_walk_memo *m, uintptr_t fp0, int max,
                                                                int skip, uint64_t *hash) {
    if (m->fp0 != fp0 || m->max != max || m->skip != skip) return -1;
    uintptr_t fp = fp0;
    int frames = m->frames;
#if defined(__SSE2__)
    // Frame 0's words were pushed by the call just made (two 8-byte stores, perhaps still in the
    // store buffer): a 16-byte load across both could not be forwarded from them and would wait
    // for them to retire (perf showed it), so that frame is checked a word at a time.
    if (frames > 0) {
        const uintptr_t *frame = (const uintptr_t *)fp;
        if (((frame[0] ^ m->words[0]) | (frame[1] ^ m->words[1])) != 0) return -1;
        fp = m->words[0];
    }
    __m128i diff = _mm_setzero_si128();
    for (int i = 1; i < frames; i++) {
        __m128i seen = _mm_loadu_si128((const __m128i *)fp);
        diff = _mm_or_si128(diff, _mm_xor_si128(seen, _mm_loadu_si128((const __m128i *)&m->words[2 * i])));
        fp = m->words[2 * i];
    }
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(diff, _mm_setzero_si128())) != 0xFFFF) return -1;
#else
    uintptr_t diff = 0;
    for (int i = 0; i < frames; i++) {
        const uintptr_t *frame = (const uintptr_t *)fp;
        diff |= (frame[0] ^ m->words[2 * i]) | (frame[1] ^ m->words[2 * i + 1]);
        fp = m->words[2 * i];
    }
    if (diff != 0) return -1;
#endif
    *hash = m->hash;
    return m->n;
}

// The `n` addresses a walk through the memo found (the return addresses of the frames it visited
// after the first `skip`), into `pcs`.
static void addresses_from_memo(const tangle_walk_memo *m, int skip, int n, uintptr_t *pcs) {
    for (int i = 0; i < n; i++) pcs[i] = m->words[2 * (skip + i) + 1];
}

__attribute__((noinline)) int tangle_fp_walk(uintptr_t *pcs, int max, int skip, uintptr_t lo, uintptr_t hi) {
    uint64_t hash;
    // frame 0 is this function's own: its return address (into our caller) is the first seen.
    return walk_and_hash((uintptr_t)__builtin_frame_address(0), pcs, max, skip, lo, hi, &hash, NULL);
}

int tangle_thread_stack_range(uintptr_t *lo, uintptr_t *hi) {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return -1;
    void *addr = NULL;
    size_t size = 0;
    int rc = pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    if (rc != 0) return -1;
    *lo = (uintptr_t)addr;
    *hi = (uintptr_t)addr + size;
    return 0;
}

struct module_ctx { void (*fn)(const tangle_module *, void *); void *ctx; uint64_t adds; };

static int module_cb(struct dl_phdr_info *info, size_t size, void *data) {
    struct module_ctx *mc = data;
    (void)size;
    mc->adds = info->dlpi_adds;
    if (mc->fn == NULL) return 1;
    tangle_module m;
    memset(&m, 0, sizeof m);
    m.path = info->dlpi_name ? info->dlpi_name : "";
    m.bias = info->dlpi_addr;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            uint64_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
            if (s < lo) lo = s;
            if (e > hi) hi = e;
        } else if (ph->p_type == PT_NOTE && m.build_id == NULL) {
            const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
            const uint8_t *end = p + ph->p_memsz;
            while (p + sizeof(ElfW(Nhdr)) <= end) {
                const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
                size_t namesz = (nh->n_namesz + 3) & ~3u, descsz = (nh->n_descsz + 3) & ~3u;
                const uint8_t *name = p + sizeof(ElfW(Nhdr));
                const uint8_t *desc = name + namesz;
                if (desc + nh->n_descsz > end) break;
                if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                    m.build_id = desc;
                    m.build_id_len = nh->n_descsz;
                    break;
                }
                p = desc + descsz;
            }
        }
    }
    if (hi == 0) lo = 0;
    m.lo = lo;
    m.hi = hi;
    mc->fn(&m, mc->ctx);
    return 0;
}

uint64_t tangle_modules(void (*fn)(const tangle_module *m, void *ctx), void *ctx) {
    struct module_ctx mc = {fn, ctx, 0};
    dl_iterate_phdr(module_cb, &mc);
    return mc.adds;
}

uint64_t tangle_module_adds(void) {
    struct module_ctx mc = {NULL, NULL, 0};
    dl_iterate_phdr(module_cb, &mc);
    return mc.adds;
}

// ---- Ring buffers ------------------------------------------------------------------------------

int tangle_trace_stack_depth = 16;
int tangle_trace_state = 0;
pid_t tangle_trace_pid = 0;
uint64_t tangle_trace_fork_generation = 0;
uint64_t tangle_trace_stack_generation = 1;

void tangle_trace_forget_stacks(void) {
    __atomic_add_fetch(&tangle_trace_stack_generation, 1, __ATOMIC_RELEASE);
}

// Slots per thread ring: 8192 (512 KB) unless TANGLE_BUFFER_SLOTS says otherwise (a power of two,
// 64 ... 1048576; read once, at load).
static uint64_t ring_slots = 8192u;

static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;
static tangle_tbuf *buffers = NULL;
// initial-exec: one %fs-relative load per event instead of a __tls_get_addr call.
static __thread tangle_tbuf *tls_buf __attribute__((tls_model("initial-exec"))) = NULL;
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static sem_t wake_sem;
static pthread_once_t sem_once = PTHREAD_ONCE_INIT;

static void init_sem(void) { sem_init(&wake_sem, 0, 0); }

static void buffer_thread_exit(void *p) {
    tangle_tbuf *b = p;
    __atomic_store_n(&b->exited, 1, __ATOMIC_RELEASE);
    tangle_trace_wake();
}

static void make_key(void) { pthread_key_create(&exit_key, buffer_thread_exit); }

static tangle_tbuf *buffer_create(void) {
    pthread_once(&key_once, make_key);
    tangle_tbuf *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    // Page-aligned, so each 64-byte record is one cache line (malloc's 16-byte alignment made
    // every record straddle two: twice the lines to move between the two cores).
    void *slots = NULL;
    if (posix_memalign(&slots, 4096, sizeof(tangle_slot) * ring_slots) != 0) { free(b); return NULL; }
    b->slots = slots;
    b->mask = ring_slots - 1;
    b->tid = tangle_gettid();
    if (tangle_thread_stack_range(&b->stack_lo, &b->stack_hi) != 0) { b->stack_lo = 0; b->stack_hi = 0; }
    pthread_mutex_lock(&writer_lock);
    b->next = buffers;
    buffers = b;
    pthread_mutex_unlock(&writer_lock);
    pthread_setspecific(exit_key, b);
    tls_buf = b;
    return b;
}

tangle_tbuf *tangle_trace_current(void) { return tls_buf; }

tangle_tbuf *tangle_trace_ring_create(pid_t tid, uint64_t slots) {
    if (slots < 64 || (slots & (slots - 1)) != 0) slots = 64;
    tangle_tbuf *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    void *mem = NULL;
    if (posix_memalign(&mem, 4096, sizeof(tangle_slot) * slots) != 0) { free(b); return NULL; }
    b->slots = mem;
    b->mask = slots - 1;
    b->tid = tid;
    pthread_mutex_lock(&writer_lock);
    b->next = buffers;
    buffers = b;
    pthread_mutex_unlock(&writer_lock);
    return b;
}

void tangle_trace_ring_end(tangle_tbuf *b) {
    __atomic_store_n(&b->exited, 1, __ATOMIC_RELEASE);
    tangle_trace_wake();
}

tangle_tbuf *tangle_trace_ring_use(tangle_tbuf *b) {
    tangle_tbuf *own = tls_buf;
    if (own == NULL) own = buffer_create();
    if (own) {
        b->stack_lo = own->stack_lo;
        b->stack_hi = own->stack_hi;
    }
    tls_buf = b;
    return own;
}

void tangle_trace_ring_restore(tangle_tbuf *own) { tls_buf = own; }

uint64_t tangle_trace_take_dropped(void) {
    tangle_tbuf *b = tls_buf;
    if (!b) return 0;
    uint64_t d = b->dropped;
    b->dropped = 0;
    return d;
}

void tangle_trace_count_drop(void) {
    tangle_tbuf *b = tls_buf;
    if (b) b->dropped++;
}

// The ring is full. While the flusher is draining (it holds the writer lock and publishes its
// progress as it formats), wait for room rather than contend. Returns 0 — the caller drains the
// rings itself under the writer lock — when nobody holds that lock (the flusher sleeps, or waits
// for a CPU on a busy machine), when the recorder is not running, or when the drainer makes no
// progress for 2 ms (stuck in write(2), or gone).
// 200 µs without progress: longer than a drain round, shorter than a scheduler slice.
static const uint64_t self_drain_after_ns = 200000;

__attribute__((noinline)) static int wait_for_room(tangle_tbuf *b, uint64_t head, uint64_t need) {
    if (__atomic_load_n(&tangle_trace_state, __ATOMIC_RELAXED) != 1) return 0;
    tangle_trace_wake();
    uint64_t last = __atomic_load_n(&b->tail, __ATOMIC_ACQUIRE);
    uint64_t since = tangle_now_ns();
    uint64_t want = need + (b->mask + 1) / 8;  // wait for a useful amount of room, not one slot
    for (unsigned i = 1;; i++) {
        uint64_t tail = __atomic_load_n(&b->tail, __ATOMIC_ACQUIRE);
        if (head - tail + want <= b->mask + 1 || (tail != last && head - tail + need <= b->mask + 1 && i > 4096)) {
            b->cached_tail = tail;
            return 1;
        }
        if (tail != last) {
            last = tail;
            since = tangle_now_ns();
        } else if ((i & 31) == 0) {
            if (__atomic_load_n(&tangle_trace_state, __ATOMIC_RELAXED) != 1) return 0;
            // No progress for a while and nobody draining (the flusher waits for a CPU on a busy
            // machine): draining ourselves beats waiting for it to be scheduled.
            if (tangle_now_ns() - since > self_drain_after_ns && pthread_mutex_trylock(&writer_lock) == 0) {
                pthread_mutex_unlock(&writer_lock);
                return 0;
            }
            if (tangle_now_ns() - since > 2000000ull) return 0;
        }
        if (i < 64) __builtin_ia32_pause(); else sched_yield();
    }
}

// The stack of an event recorded by tangle_trace_append, whose frame is `fp0`, through the thread's
// memo of its last walk: its hash in `*hash` (0: no stack), and how many of its addresses must go
// into the ring after the record, in `pcs` (0 when the writer already knows the stack by its
// hash). Inlined into the entry points that take stacks (measured: 3–5 ns less per lock pair than
// out of line); an event without a stack goes through tangle_trace_append_plain instead.
static inline __attribute__((always_inline)) int stack_of(tangle_tbuf *b, uintptr_t fp0, int skip, uint64_t *hash, uintptr_t *pcs) {
    int max = tangle_trace_stack_depth;
    int n;
    int in_memo = 0;  // the addresses are in the memo, not (yet) in `pcs`
    tangle_walk_memo *m = &b->last_walk;
    int mine = !m->busy;  // the memo is ours to use (not in use by the recording a signal interrupted)
    if (__builtin_expect(!mine, 0)) {
        // Recording from a signal handler that interrupted a recording: leave the memo alone.
        n = walk_and_hash(fp0, pcs, max, skip, b->stack_lo, b->stack_hi, hash, NULL);
    } else {
        m->busy = 1;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        n = walk_from_memo(m, fp0, max, skip, hash);
        if (n >= 0) {
            in_memo = 1;
        } else {
            m->fp0 = 0;
            n = walk_and_hash(fp0, pcs, max, skip, b->stack_lo, b->stack_hi, hash, m);
            if (m->frames <= TANGLE_WALK_MEMO_FRAMES) {
                m->skip = skip;
                m->max = max;
                m->n = n;
                m->hash = *hash;
                m->fp0 = fp0;
            }
        }
    }
    int send = 0;
    if (n > 0) {
        uint64_t gen = __atomic_load_n(&tangle_trace_stack_generation, __ATOMIC_ACQUIRE);
        if (__builtin_expect(b->known_generation != gen, 0)) {
            memset(b->known, 0, sizeof b->known);
            b->known_generation = gen;
        }
        uint64_t h = *hash;
        send = b->known[h & 63] == h ? 0 : n;
        // (Still marked busy: a signal handler's walk cannot rewrite the memo under this copy.)
        if (send && in_memo) addresses_from_memo(m, skip, n, pcs);
    } else {
        *hash = 0;
    }
    if (mine) {
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        m->busy = 0;
    }
    return send;
}

// Writes one record (and the `send` stack addresses of `sent` after it) at `head`, then publishes
// it. `used` is the ring's fill before it, by the thread's view. `timed`: 1 use `time`, 2 read the
// TSC (known to be the clock), 0 read the ring's clock. The time is read last (measured: rdtsc
// before the walk made the pair slower, not faster).
static inline __attribute__((always_inline)) int write_record(tangle_tbuf *b, uint64_t head, uint64_t used,
                                                               uint64_t meta, int timed, uint64_t time,
                                                               uint64_t object, uint64_t a, uint64_t b_, uint64_t c,
                                                               int send, uint64_t h, const uintptr_t *sent) {
    uint64_t kind = meta & 0xFFFF, result = (meta >> 16) & 0xFF, text = meta >> 32;
    uint64_t need = 1 + (uint64_t)((send + 7) / 8);
    tangle_slot *s = &b->slots[head & b->mask];
    // Ask for the line 16 slots ahead in exclusive state now: the flusher, on the other core, read
    // it a ring ago, and a store that must first take it back would stall the next locked
    // instruction (the lock's own cmpxchg/xchg waits for every earlier store).
    __asm__ volatile("prefetchw %0" : : "m"(b->slots[(head + 16) & b->mask]));
    s->w[1] = object;
    s->w[2] = a;
    s->w[3] = b_;
    s->w[4] = c;
    s->w[5] = b->seq++;
    s->w[6] = kind | (result << 16) | ((uint64_t)send << 24) | (text << 32);
    s->w[7] = h;
    s->w[0] = timed == 1 ? time : timed == 2 ? read_tsc() : ring_time();
    for (int i = 0; i < send; i++) b->slots[(head + 1 + (uint64_t)(i / 8)) & b->mask].w[i % 8] = sent[i];
    __atomic_store_n(&b->head, head + need, __ATOMIC_RELEASE);
    // Only once it is in the ring: a record that could not be written leaves the stack unsent.
    if (send) b->known[h & 63] = h;
    uint64_t half = (b->mask + 1) / 2;
    if (used < half && used + need >= half) return 1;
    return 0;
}

// `put_record` when the ring looks past half full by the thread's last view of the drainer: look
// at what it freed, wait for room if there is none. Out of line, so that the usual path saves no
// registers for this call.
__attribute__((noinline)) static int put_record_short(tangle_tbuf *b, uint64_t meta, int timed, uint64_t time,
                                                      uint64_t object, uint64_t a, uint64_t b_, uint64_t c,
                                                      int send, uint64_t h, const uintptr_t *sent) {
    uint64_t need = 1 + (uint64_t)((send + 7) / 8);
    uint64_t head = b->head;
    uint64_t tail = __atomic_load_n(&b->tail, __ATOMIC_ACQUIRE);
    b->cached_tail = tail;
    uint64_t used = head - tail;
    if (used + need > b->mask + 1) {
        if (!wait_for_room(b, head, need)) return -1;
        used = head - b->cached_tail;
    }
    return write_record(b, head, used, meta, timed, time, object, a, b_, c, send, h, sent);
}

// Appends one record to `b` (see write_record), or returns -1 when the ring stays full.
static inline __attribute__((always_inline)) int put_record(tangle_tbuf *b, uint64_t meta, int timed, uint64_t time,
                                                             uint64_t object, uint64_t a, uint64_t b_, uint64_t c,
                                                             int send, uint64_t h, const uintptr_t *sent) {
    uint64_t need = 1 + (uint64_t)((send + 7) / 8);
    uint64_t head = b->head;
    uint64_t used = head - b->cached_tail;
    if (__builtin_expect(used + need > b->mask / 2, 0))
        return put_record_short(b, meta, timed, time, object, a, b_, c, send, h, sent);
    return write_record(b, head, used, meta, timed, time, object, a, b_, c, send, h, sent);
}

// The body of the entry points that may take a stack. Always inlined into them, so
// `__builtin_frame_address(0)` is the entry point's frame (what `skip` counts from), and `timed` is
// a constant: `time` is used as the event's ring time, or the clock is read.
static inline __attribute__((always_inline)) int append(uint64_t meta, int timed, uint64_t time, uint64_t object,
                                                         uint64_t a, uint64_t b_, uint64_t c) {
    tangle_tbuf *b = tls_buf;
    if (__builtin_expect(b == NULL, 0)) {
        b = buffer_create();
        if (!b) return -2;
    }
    int skip = (int)((meta >> 25) & 0x7F);
    uintptr_t pcs[64];
    int send = 0;
    uint64_t h = 0;
    if ((meta & TANGLE_APPEND_STACK) && b->stack_hi != 0) {
        // frame 0 is this function's own: its return address (into the caller) is the first seen,
        // which is what `skip` counts from.
        send = stack_of(b, (uintptr_t)__builtin_frame_address(0), skip, &h, pcs);
    }
    return put_record(b, meta, timed, time, object, a, b_, c, send, h, pcs);
}

__attribute__((noinline)) int tangle_trace_append(uint64_t meta, uint64_t object, uint64_t a, uint64_t b, uint64_t c) {
    return append(meta, 0, 0, object, a, b, c);
}

__attribute__((noinline)) int tangle_trace_append_at(uint64_t meta, uint64_t time, uint64_t object, uint64_t a,
                                                     uint64_t b, uint64_t c) {
    return append(meta, 1, time, object, a, b, c);
}

// Only the usual case is handled here, so that it needs no frame and saves no registers; the
// rest (first use, a ring past half full, no TSC) goes to the general entry point: a tail call,
// and without a stack to take, that entry point's frame does not matter.
int tangle_trace_append_plain(uint64_t meta, uint64_t object, uint64_t a, uint64_t b, uint64_t c) {
    tangle_tbuf *buf = tls_buf;
    if (__builtin_expect(buf == NULL || !tangle_trace_clock_tsc, 0)) return tangle_trace_append(meta, object, a, b, c);
    uint64_t head = buf->head;
    uint64_t used = head - buf->cached_tail;
    if (__builtin_expect(used + 1 > buf->mask / 2, 0)) return tangle_trace_append(meta, object, a, b, c);
    // (Below mask / 2 after it, so this record cannot be the one that crosses half: 0.)
    write_record(buf, head, used, meta, 2, 0, object, a, b, c, 0, 0, NULL);
    return 0;
}

uint64_t tangle_trace_now(void) { return ring_time(); }

void tangle_trace_lock(void) { pthread_mutex_lock(&writer_lock); }
void tangle_trace_unlock(void) { pthread_mutex_unlock(&writer_lock); }

int tangle_trace_trylock_ms(int ms) {
    for (int i = 0; i <= ms; i++) {
        if (pthread_mutex_trylock(&writer_lock) == 0) return 1;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

tangle_tbuf *tangle_trace_buffers(void) { return buffers; }

uint64_t tangle_tbuf_head(const tangle_tbuf *b) { return __atomic_load_n(&b->head, __ATOMIC_ACQUIRE); }
void tangle_tbuf_set_tail(tangle_tbuf *b, uint64_t tail) { __atomic_store_n(&b->tail, tail, __ATOMIC_RELEASE); }

void tangle_trace_reap(void) {
    tangle_tbuf **pp = &buffers;
    while (*pp) {
        tangle_tbuf *b = *pp;
        if (__atomic_load_n(&b->exited, __ATOMIC_ACQUIRE) &&
            __atomic_load_n(&b->head, __ATOMIC_ACQUIRE) == b->tail) {
            *pp = b->next;
            free(b->slots);
            free(b);
        } else {
            pp = &b->next;
        }
    }
}

uint64_t tangle_trace_heads(void) {
    uint64_t sum = 0;
    for (tangle_tbuf *b = buffers; b; b = b->next) sum += __atomic_load_n(&b->head, __ATOMIC_ACQUIRE);
    return sum;
}

void tangle_trace_discard_all(void) {
    for (tangle_tbuf *b = buffers; b; b = b->next)
        __atomic_store_n(&b->tail, __atomic_load_n(&b->head, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
}

void tangle_trace_wake(void) {
    pthread_once(&sem_once, init_sem);
    sem_post(&wake_sem);
}

void tangle_trace_wait(int ms) {
    pthread_once(&sem_once, init_sem);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    while (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    while (sem_timedwait(&wake_sem, &ts) != 0 && errno == EINTR) {}
}

// In a forked child only the forking thread exists: keep its buffer (emptied, new tid, seq from 0),
// forget the others, and start over with a fresh lock.
static void atfork_child(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&writer_lock, &fresh, sizeof fresh);
    sem_init(&wake_sem, 0, 0);
    tangle_trace_pid = getpid();
    tangle_tbuf *mine = tls_buf;
    buffers = NULL;
    if (mine) {
        mine->tail = mine->head;
        mine->cached_tail = mine->head;
        mine->seq = 0;
        mine->dropped = 0;
        mine->tid = tangle_gettid();
        mine->next = NULL;
        buffers = mine;
    }
    tangle_trace_fork_generation++;
    tangle_trace_stack_generation++;  // the child's new file knows no stacks
    int st = tangle_trace_state;
    if (st == 1 || st == 3) tangle_trace_state = 2;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void install_atfork(void) { pthread_atfork(NULL, NULL, atfork_child); }
void tangle_trace_install_atfork(void) { pthread_once(&atfork_once, install_atfork); }

static void (*signal_fn)(int) = NULL;

static void on_signal(int sig) {
    if (signal_fn) signal_fn(sig);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
}

int tangle_trace_install_signals(void (*fn)(int sig)) {
    signal_fn = fn;
    int sigs[2] = {SIGTERM, SIGINT};
    int mask = 0;
    for (int i = 0; i < 2; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) != 0) continue;
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_signal;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESTART;
            if (sigaction(sigs[i], &sa, NULL) == 0) mask |= 1 << i;
        }
    }
    return mask;
}

int tangle_trace_on_exit(void (*fn)(int status, void *arg)) { return on_exit(fn, NULL); }

// ---- Test children -----------------------------------------------------------------------------

__attribute__((constructor)) static void tangle_trace_route_test_child(void) {
    tangle_trace_pid = getpid();
    const char *depth = getenv("TANGLE_STACK_DEPTH");
    if (depth && *depth) {
        int d = atoi(depth);
        if (d < 0) d = 0;
        if (d > 64) d = 64;
        tangle_trace_stack_depth = d;
    }
    const char *slots = getenv("TANGLE_BUFFER_SLOTS");
    if (slots && *slots) {
        unsigned long v = strtoul(slots, NULL, 10);
        if (v >= 64 && v <= (1ul << 20) && (v & (v - 1)) == 0) ring_slots = v;
    }
    const char *name = getenv("TANGLE_TRACE_TEST_CHILD");
    if (name == NULL || name[0] == 0 || tangle_trace_test_child == NULL) return;
    int rc = tangle_trace_test_child(name);
    fflush(NULL);
    _exit(rc);
}
