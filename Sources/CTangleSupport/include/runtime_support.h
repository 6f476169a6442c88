// C shims for the Tangle runtime's processes, threads, pool and CPU count (owned by the processes
// area): posix_spawn with inherited descriptors, pidfd, memfd, prctl, fork, wait-status macros,
// affinity, and the constructor that routes a child started from a test binary (docs/runtime.md).
#ifndef TANGLE_RUNTIME_SUPPORT_H
#define TANGLE_RUNTIME_SUPPORT_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// posix_spawn of `path` with `argv`/`envp`. Every descriptor in `keep` stays open at the same
/// number in the child (dup2(fd, fd), which clears FD_CLOEXEC in the child only — glibc ≥ 2.29).
/// When `reset_signals` is non-zero the child starts with an empty signal mask and default
/// dispositions for the usual signals. Returns 0 or an errno value.
int tangle_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 const int *keep, int nkeep, int reset_signals);

/// The process environment (`environ`).
char **tangle_environ(void);

/// pidfd_open(2) (O_CLOEXEC is implied). -1 and errno on failure.
int tangle_pidfd_open(pid_t pid);
/// pidfd_send_signal(2). 0 or -1 and errno.
int tangle_pidfd_send_signal(int pidfd, int sig);
/// poll(2) one descriptor for readability, `timeout_ms` (-1 = forever). 1 ready, 0 timeout, -1 error.
int tangle_poll_readable(int fd, int timeout_ms);

/// memfd_create(2) with MFD_CLOEXEC.
int tangle_memfd_create(const char *name);

/// prctl(PR_SET_PDEATHSIG, sig).
int tangle_set_pdeathsig(int sig);

/// fork(2), plain.
pid_t tangle_fork(void);

/// Wait-status macros.
int tangle_wifexited(int status);
int tangle_wexitstatus(int status);
int tangle_wifsignaled(int status);
int tangle_wtermsig(int status);

/// CPUs in the calling process's affinity mask (sched_getaffinity), or -1.
int tangle_affinity_count(void);
/// Restrict the calling thread's affinity to the `n` CPUs listed. 0 or -1.
int tangle_set_affinity(const int *cpus, int n);

/// Registers `fn` with on_exit(3): it gets the status passed to exit().
int tangle_on_exit(void (*fn)(int status, void *arg));

/// Where the code at `address` lies: the loaded object's name ("" for the main program, as
/// dl_iterate_phdr says it) in `name` (at most `size` bytes, NUL-terminated) and its offset from
/// the object's load address. 0 on success, -1 when no executable segment holds it.
int tangle_code_location(const void *address, char *name, size_t size, uintptr_t *offset);

/// The address of `offset` in the loaded object named `name` (as `tangle_code_location` gave
/// them, in another process running the same executable); NULL unless it lies in an executable
/// segment of that object.
void *tangle_code_address(const char *name, uintptr_t offset);

/// The thread id of the calling thread.
pid_t tangle_runtime_gettid(void);
/// fflush(NULL) then _exit(status): for children, so printed output is not lost.
void tangle_flush_and_exit(int status) __attribute__((noreturn));

/// Writes all of `buf` to `fd` (retrying on EINTR and short writes). 0 or -1.
int tangle_write_all(int fd, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
