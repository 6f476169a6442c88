#define _GNU_SOURCE
#include "runtime_support.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

int tangle_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 const int *keep, int nkeep, int reset_signals) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) { posix_spawn_file_actions_destroy(&fa); return rc; }
    for (int i = 0; i < nkeep && rc == 0; i++) {
        // dup2(fd, fd) in the child: glibc clears FD_CLOEXEC there (POSIX issue 8 semantics).
        rc = posix_spawn_file_actions_adddup2(&fa, keep[i], keep[i]);
    }
    if (rc == 0 && reset_signals) {
        sigset_t empty, defaults;
        sigemptyset(&empty);
        sigemptyset(&defaults);
        int sigs[] = {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&defaults, sigs[i]);
        posix_spawnattr_setsigmask(&attr, &empty);
        posix_spawnattr_setsigdefault(&attr, &defaults);
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    }
    if (rc == 0) rc = posix_spawn(pid, path, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

char **tangle_environ(void) { return environ; }

int tangle_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int tangle_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int tangle_poll_readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;  // (a retry restarts the full timeout; callers loop on deadlines)
        return r;
    }
}

int tangle_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int tangle_set_pdeathsig(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }

pid_t tangle_fork(void) { return fork(); }

int tangle_wifexited(int status) { return WIFEXITED(status); }
int tangle_wexitstatus(int status) { return WEXITSTATUS(status); }
int tangle_wifsignaled(int status) { return WIFSIGNALED(status); }
int tangle_wtermsig(int status) { return WTERMSIG(status); }

int tangle_affinity_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    return CPU_COUNT(&set);
}

int tangle_set_affinity(const int *cpus, int n) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < n; i++) CPU_SET(cpus[i], &set);
    return sched_setaffinity(0, sizeof set, &set);
}

int tangle_on_exit(void (*fn)(int status, void *arg)) { return on_exit(fn, NULL); }

pid_t tangle_runtime_gettid(void) { return (pid_t)syscall(SYS_gettid); }

void tangle_flush_and_exit(int status) {
    fflush(NULL);
    _exit(status);
}

int tangle_write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

// ---- Test-binary children ----------------------------------------------------------------------
// A test target registers its children's entry points with TangleRuntime.registerTestEntryPoints(f):
// the parent passes f's place (loaded object, offset) to the children it spawns, and a child — the
// same executable, loaded elsewhere — finds f there and calls it before it looks its entry point up.

#include <link.h>
#include <stdint.h>

struct tangle_code_query {
    uintptr_t address;      // by address (location) ...
    const char *name;       // ... or by name and offset (address)
    uintptr_t offset;
    char *out_name;
    size_t size;
    uintptr_t result;
    int found;
};

static int tangle_in_exec_segment(struct dl_phdr_info *info, uintptr_t address) {
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (address >= start && address < start + ph->p_memsz) return 1;
    }
    return 0;
}

static int tangle_code_callback(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct tangle_code_query *q = data;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (q->name == NULL) {
        if (!tangle_in_exec_segment(info, q->address)) return 0;
        if (strlen(name) + 1 > q->size) return 1;   // (found, but the name does not fit: not usable)
        strcpy(q->out_name, name);
        q->result = q->address - info->dlpi_addr;
        q->found = 1;
        return 1;
    }
    if (strcmp(name, q->name) != 0) return 0;
    uintptr_t address = info->dlpi_addr + q->offset;
    if (tangle_in_exec_segment(info, address)) { q->result = address; q->found = 1; }
    return 1;
}

int tangle_code_location(const void *address, char *name, size_t size, uintptr_t *offset) {
    struct tangle_code_query q = {.address = (uintptr_t)address, .out_name = name, .size = size};
    dl_iterate_phdr(tangle_code_callback, &q);
    if (!q.found) return -1;
    *offset = q.result;
    return 0;
}

void *tangle_code_address(const char *name, uintptr_t offset) {
    struct tangle_code_query q = {.name = name, .offset = offset};
    dl_iterate_phdr(tangle_code_callback, &q);
    return q.found ? (void *)q.result : NULL;
}

// Defined by the Tangle Swift target (@_cdecl). Weak so that a binary linking this C target
// without Tangle still links.
extern void tangle_run_child_early(void) __attribute__((weak));

// Runs before main (and before a test runner's main): a child whose parent never called the
// bootstrap (a test binary) is marked TANGLE_CHILD_EARLY=1 and is routed here.
__attribute__((constructor)) static void tangle_route_child(void) {
    const char *early = getenv("TANGLE_CHILD_EARLY");
    if (early == NULL || early[0] != '1') return;
    if (getenv("TANGLE_CHILD") == NULL) return;
    if (tangle_run_child_early) tangle_run_child_early();  // never returns
}
