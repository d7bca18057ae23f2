#ifndef CONVEYOR_CSHIMS_SPAWN_H
#define CONVEYOR_CSHIMS_SPAWN_H
#include <spawn.h>

/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34+), which Swift does not see without _GNU_SOURCE:
 * the child closes every descriptor from `from` up before exec. */
int conveyor_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from);

/* pthread_setname_np for the calling thread (what /proc/<pid>/task/<tid>/comm shows; 15 characters at most). */
int conveyor_set_thread_name(const char *name);

/* PR_SET_DUMPABLE: a non-dumpable process's /proc files (environ, mem, maps, fd) belong to root and only a
 * process with CAP_SYS_PTRACE may open them or attach to it; no core dump is written. Returns 0 or an errno. */
int conveyor_set_dumpable(int dumpable);

/* PR_GET_DUMPABLE: 1 when dumpable, 0 when not. */
int conveyor_dumpable(void);

/* Keeps only the capabilities in the `keep` mask (bit n: capability n) in the effective, permitted and
 * bounding sets; clears the inheritable and ambient sets. Nothing to do for a process without capabilities.
 * Returns 0 or an errno. */
int conveyor_drop_capabilities(unsigned long long keep);

/* The effective capability set (bit n: capability n). */
unsigned long long conveyor_effective_capabilities(void);

/* tgkill(2): returns 0 or the errno. */
int conveyor_tgkill(int tgid, int tid, int signal);

/* gettid(2). */
int conveyor_gettid(void);

/* Reads process `pid`'s RLIMIT_NOFILE with prlimit(2) (the call that could also set it): 0 or the errno. */
int conveyor_prlimit_read(int pid);

/* pidfd_open(pid) then pidfd_send_signal(signal): 0, or the errno of the step that failed. */
int conveyor_pidfd_signal(int pid, int signal);
#endif
