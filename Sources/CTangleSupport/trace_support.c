#define _GNU_SOURCE
#include "trace_support.h"
#include <unistd.h>
#include <fcntl.h>
#include <sys/syscall.h>

pid_t tangle_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int tangle_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
