// Small C shims for what Swift's Glibc module does not expose (gettid, pipe2, dl_iterate_phdr,
// futex, a frame-pointer walk). Static inline where the call is hot; everything else in .c files.
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

#ifdef __cplusplus
}
#endif
#endif
