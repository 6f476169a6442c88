#define _GNU_SOURCE
#include "sync_support.h"
#include "trace_support.h"  // tangle_now_ns: one clock for the trace and the waits
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__thread int32_t tangle_sync_tid_cache __attribute__((tls_model("initial-exec"))) = 0;
int32_t tangle_sync_pid_cache = 0;
int tangle_sync_tracing = 0;

static void tangle_sync_after_fork_child(void) {
    tangle_sync_tid_cache = 0;
    __atomic_store_n(&tangle_sync_pid_cache, 0, __ATOMIC_RELAXED);
}

static pthread_once_t tangle_sync_once = PTHREAD_ONCE_INIT;
static void tangle_sync_init_once(void) { pthread_atfork(NULL, NULL, tangle_sync_after_fork_child); }

int32_t tangle_sync_tid_slow(void) {
    pthread_once(&tangle_sync_once, tangle_sync_init_once);
    int32_t t = (int32_t)syscall(SYS_gettid);
    tangle_sync_tid_cache = t;
    return t;
}

int32_t tangle_sync_pid_slow(void) {
    pthread_once(&tangle_sync_once, tangle_sync_init_once);
    int32_t p = (int32_t)getpid();
    __atomic_store_n(&tangle_sync_pid_cache, p, __ATOMIC_RELAXED);
    return p;
}

int tangle_sync_pid_alive(int32_t pid) {
    if (pid <= 0) return 0;
    if (kill(pid, 0) == -1 && errno == ESRCH) return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : 1;
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 1;
    buf[n] = 0;
    char *paren = strrchr(buf, ')');
    if (!paren || paren[1] != ' ') return 1;
    char state = paren[2];
    return (state == 'Z' || state == 'X' || state == 'x') ? 0 : 1;
}

int tangle_futex_wait(uint32_t *addr, uint32_t val, int64_t timeout_ns) {
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000ll;
        ts.tv_nsec = timeout_ns % 1000000000ll;
        tsp = &ts;
    }
    long r = syscall(SYS_futex, addr, FUTEX_WAIT, val, tsp, NULL, 0);
    if (r == 0) return 0;
    if (errno == EAGAIN) return 0;
    return errno;
}

int tangle_futex_wake(uint32_t *addr, int n) {
    long r = syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
    return r < 0 ? 0 : (int)r;
}

int tangle_lock_spin(tangle_lock_t *l, int spins) {
    for (int i = 0; i < spins; i++) {
        if (__atomic_load_n(&l->word, __ATOMIC_RELAXED) == 0 && tangle_lock_try(l)) return 1;
        __builtin_ia32_pause();
    }
    return 0;
}

static int tangle_lock_take_from_dead(tangle_lock_t *l, int32_t *dead_owner) {
    // The word names the owner (see tangle_lock_t).
    uint32_t word = __atomic_load_n(&l->word, __ATOMIC_ACQUIRE);
    int32_t owner = (int32_t)word;
    int32_t me = tangle_sync_pid();
    if (owner == 0 || owner == me) return 0;
    if (tangle_sync_pid_alive(owner)) return 0;
    if (!__atomic_compare_exchange_n(&l->word, &word, (uint32_t)me, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return 0;
    l->owner_pid = me;
    l->owner_tid = tangle_sync_tid();
    l->depth = 0;
    *dead_owner = owner;
    return 1;
}

#define TANGLE_LIVENESS_SLICE_NS 50000000ll

int tangle_lock_acquire_slow(tangle_lock_t *l, int64_t timeout_ns, int32_t *dead_owner) {
    if (timeout_ns == 0) {
        if (tangle_lock_try(l)) return 0;
        return tangle_lock_take_from_dead(l, dead_owner) ? EOWNERDEAD : ETIMEDOUT;
    }
    uint64_t start = tangle_now_ns();
    uint64_t deadline = timeout_ns > 0 ? start + (uint64_t)timeout_ns : UINT64_MAX;
    uint64_t last_check = start;
    for (int i = 0; i < 100; i++) {
        if (__atomic_load_n(&l->word, __ATOMIC_RELAXED) == 0 && tangle_lock_try(l)) return 0;
        __builtin_ia32_pause();
    }
    for (;;) {
        if (tangle_lock_try(l)) return 0;
        uint64_t now = tangle_now_ns();
        if (now - last_check >= (uint64_t)TANGLE_LIVENESS_SLICE_NS) {
            last_check = now;
            if (tangle_lock_take_from_dead(l, dead_owner)) return EOWNERDEAD;
        }
        if (now >= deadline) return ETIMEDOUT;
        uint64_t left = deadline - now;
        int64_t wait = left > (uint64_t)TANGLE_LIVENESS_SLICE_NS ? TANGLE_LIVENESS_SLICE_NS : (int64_t)left;
        __atomic_fetch_add(&l->waiters, 1, __ATOMIC_SEQ_CST);
        uint32_t held = __atomic_load_n(&l->word, __ATOMIC_SEQ_CST);
        if (held != 0) tangle_futex_wait(&l->word, held, wait);
        __atomic_fetch_sub(&l->waiters, 1, __ATOMIC_SEQ_CST);
    }
}

_Static_assert(offsetof(tangle_queue_t, tail_lock) == 64, "queue producers' line");
_Static_assert(offsetof(tangle_queue_t, head_lock) == 128, "queue consumers' line");
_Static_assert(offsetof(tangle_queue_t, not_empty_seq) == 192, "queue getters' line");
_Static_assert(offsetof(tangle_queue_t, not_full_seq) == 256, "queue putters' line");
_Static_assert(offsetof(tangle_queue_t, join_lock) == 320, "queue join line");
_Static_assert(sizeof(tangle_queue_t) == 384, "queue state size");

void tangle_queue_lock_slow(tangle_qlock_t *l) {
    for (int i = 0; i < 500; i++) {
        if (__atomic_load_n(&l->word, __ATOMIC_RELAXED) == 0 && tangle_qlock_try(l)) return;
        __builtin_ia32_pause();
    }
    int32_t me = tangle_sync_pid();
    uint64_t last_check = tangle_now_ns();
    for (;;) {
        if (tangle_qlock_try(l)) return;
        uint32_t owner = __atomic_load_n(&l->word, __ATOMIC_ACQUIRE);
        uint64_t now = tangle_now_ns();
        if (owner != 0 && now - last_check >= (uint64_t)TANGLE_LIVENESS_SLICE_NS) {
            last_check = now;
            // A dead owner: take the lock over from it (the word still names it).
            if ((int32_t)owner != me && !tangle_sync_pid_alive((int32_t)owner)
                && __atomic_compare_exchange_n(&l->word, &owner, (uint32_t)me, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                return;
            continue;
        }
        if (owner == 0) continue;
        __atomic_fetch_add(&l->waiters, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&l->word, __ATOMIC_SEQ_CST) == owner) tangle_futex_wait(&l->word, owner, TANGLE_LIVENESS_SLICE_NS);
        __atomic_fetch_sub(&l->waiters, 1, __ATOMIC_SEQ_CST);
    }
}

void tangle_queue_wait_nonempty(tangle_queue_t *q, int64_t timeout_ns) {
    __atomic_fetch_add(&q->not_empty_sleepers, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&q->not_empty_armed, 1, __ATOMIC_SEQ_CST);
    uint32_t seq = __atomic_load_n(&q->not_empty_seq, __ATOMIC_SEQ_CST);
    uint64_t h = __atomic_load_n(&q->head, __ATOMIC_SEQ_CST);
    if ((uint32_t)h == (uint32_t)__atomic_load_n(&q->tail, __ATOMIC_SEQ_CST))
        tangle_futex_wait(&q->not_empty_seq, seq, timeout_ns);
    // The wake that ended this sleep disarmed the queue: re-arm it for the getters still asleep.
    if (__atomic_sub_fetch(&q->not_empty_sleepers, 1, __ATOMIC_SEQ_CST) != 0)
        __atomic_store_n(&q->not_empty_armed, 1, __ATOMIC_SEQ_CST);
}

void tangle_queue_pass_on(tangle_queue_t *q) {
    if (__atomic_load_n(&q->not_empty_sleepers, __ATOMIC_SEQ_CST) == 0) return;
    uint64_t h = __atomic_load_n(&q->head, __ATOMIC_SEQ_CST);
    if ((uint32_t)h == (uint32_t)__atomic_load_n(&q->tail, __ATOMIC_SEQ_CST)) return;
    __atomic_fetch_add(&q->not_empty_seq, 1, __ATOMIC_SEQ_CST);
    tangle_futex_wake(&q->not_empty_seq, 1);
}

int tangle_queue_poll_nonempty(tangle_queue_t *q, int spins, int yields) {
    for (int i = 0; i < spins; i++) {
        if (tangle_queue_looks_nonempty(q)) return 1;
        __builtin_ia32_pause();
    }
    for (int i = 0; i < yields; i++) {
        if (tangle_queue_looks_nonempty(q)) return 1;
        sched_yield();
    }
    return tangle_queue_looks_nonempty(q);
}

int tangle_queue_poll_fits(tangle_queue_t *q, uint64_t need, int spins, int yields) {
    for (int i = 0; i < spins; i++) {
        if (tangle_queue_looks_fits(q, need)) return 1;
        __builtin_ia32_pause();
    }
    for (int i = 0; i < yields; i++) {
        if (tangle_queue_looks_fits(q, need)) return 1;
        sched_yield();
    }
    return tangle_queue_looks_fits(q, need);
}

void tangle_queue_wait_room(tangle_queue_t *q, uint64_t need, int64_t timeout_ns) {
    __atomic_store_n(&q->not_full_armed, 1, __ATOMIC_SEQ_CST);
    uint32_t seq = __atomic_load_n(&q->not_full_seq, __ATOMIC_SEQ_CST);
    uint64_t h = __atomic_load_n(&q->head, __ATOMIC_SEQ_CST);
    if (!tangle_queue_fits(q, __atomic_load_n(&q->tail, __ATOMIC_SEQ_CST), h, need))
        tangle_futex_wait(&q->not_full_seq, seq, timeout_ns);
}

int tangle_sem_acquire_slow(tangle_sem_t *s, int64_t timeout_ns) {
    for (int i = 0; i < 200; i++) {
        if (tangle_sem_try(s)) return 0;
        __builtin_ia32_pause();
    }
    if (timeout_ns == 0) return ETIMEDOUT;
    uint64_t deadline = timeout_ns > 0 ? tangle_now_ns() + (uint64_t)timeout_ns : UINT64_MAX;
    for (;;) {
        if (tangle_sem_try(s)) return 0;
        __atomic_fetch_add(&s->waiters, 1, __ATOMIC_SEQ_CST);
        int64_t wait = -1;
        if (deadline != UINT64_MAX) {
            uint64_t now = tangle_now_ns();
            if (now >= deadline) {
                __atomic_fetch_sub(&s->waiters, 1, __ATOMIC_SEQ_CST);
                return tangle_sem_try(s) ? 0 : ETIMEDOUT;
            }
            wait = (int64_t)(deadline - now);
        }
        tangle_futex_wait(&s->value, 0, wait);
        __atomic_fetch_sub(&s->waiters, 1, __ATOMIC_SEQ_CST);
    }
}

int tangle_sem_release(tangle_sem_t *s, uint32_t n) {
    uint32_t v = __atomic_load_n(&s->value, __ATOMIC_RELAXED);
    for (;;) {
        if (s->max != 0 && v + n > s->max) return EOVERFLOW;
        if (__atomic_compare_exchange_n(&s->value, &v, v + n, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) break;
    }
    if (__atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST) > 0) tangle_futex_wake(&s->value, (int)n);
    return 0;
}

int tangle_sync_memfd(const char *name, size_t size) {
    int fd = (int)syscall(SYS_memfd_create, name, 1u /* MFD_CLOEXEC */);
    if (fd < 0) return -1;
    if (ftruncate(fd, (off_t)size) != 0) { int e = errno; close(fd); errno = e; return -1; }
    return fd;
}

void *tangle_sync_map(int fd, size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

int tangle_sync_unmap(void *p, size_t size) { return munmap(p, size); }

int64_t tangle_sync_fd_size(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    return (int64_t)st.st_size;
}

int tangle_sync_fd_valid(int fd) { return fcntl(fd, F_GETFD) != -1; }

int tangle_sync_shm_create(const char *name, size_t size) {
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    if (ftruncate(fd, (off_t)size) != 0) { int e = errno; close(fd); shm_unlink(name); errno = e; return -1; }
    return fd;
}

int tangle_sync_shm_attach(const char *name) { return shm_open(name, O_RDWR | O_CLOEXEC, 0600); }
int tangle_sync_shm_unlink(const char *name) { return shm_unlink(name); }
int tangle_sync_resize(int fd, size_t size) { return ftruncate(fd, (off_t)size); }

int tangle_sync_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
int tangle_sync_socketpair(int fds[2]) { return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds); }

int tangle_sync_poll_readable(int fd, int64_t timeout_ns) {
    struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
    uint64_t deadline = timeout_ns >= 0 ? tangle_now_ns() + (uint64_t)timeout_ns : UINT64_MAX;
    for (;;) {
        int ms = -1;
        if (timeout_ns >= 0) {
            uint64_t now = tangle_now_ns();
            ms = now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
        }
        int r = poll(&p, 1, ms);
        if (r > 0) return 1;
        if (r == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

int tangle_sync_write_all(int fd, const void *buf, size_t n, int is_socket) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = is_socket ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

long tangle_sync_read(int fd, void *buf, size_t n) {
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r < 0 && errno == EINTR) continue;
        return (long)r;
    }
}

int tangle_sync_errno(void) { return errno; }

void tangle_sync_ignore_sigpipe(void) {
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}
