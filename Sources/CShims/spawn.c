#define _GNU_SOURCE
#include <pthread.h>
#include <spawn.h>
#include "cshims_spawn.h"

int conveyor_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int conveyor_set_thread_name(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}

#if defined(__linux__)
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int conveyor_set_dumpable(int dumpable) {
    return prctl(PR_SET_DUMPABLE, dumpable ? 1 : 0, 0, 0, 0) == 0 ? 0 : errno;
}

int conveyor_dumpable(void) { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0); }

int conveyor_drop_capabilities(unsigned long long keep) {
    /* The bounding set first: dropping from it needs CAP_SETPCAP, which the capset below removes. */
    for (int cap = 0; cap <= 63; cap++) {
        if (keep & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EPERM) return errno;
    }
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return errno;
    for (int i = 0; i < 2; i++) {
        unsigned int mask = (unsigned int)(keep >> (32 * i));
        data[i].effective &= mask;
        data[i].permitted &= mask;
        data[i].inheritable = 0;
    }
    return syscall(SYS_capset, &header, data) == 0 ? 0 : errno;
}

unsigned long long conveyor_effective_capabilities(void) {
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return 0;
    return (unsigned long long)data[0].effective | ((unsigned long long)data[1].effective << 32);
}

int conveyor_tgkill(int tgid, int tid, int signal) {
    return syscall(SYS_tgkill, tgid, tid, signal) == 0 ? 0 : errno;
}

int conveyor_gettid(void) { return (int)syscall(SYS_gettid); }

int conveyor_prlimit_read(int pid) {
    struct rlimit current;
    return prlimit(pid, RLIMIT_NOFILE, NULL, &current) == 0 ? 0 : errno;
}

int conveyor_pidfd_signal(int pid, int signal) {
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_send_signal)
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) return errno;
    long r = syscall(SYS_pidfd_send_signal, fd, signal, NULL, 0);
    int saved = errno;
    close(fd);
    return r == 0 ? 0 : saved;
#else
    (void)pid; (void)signal;
    return ENOSYS;
#endif
}
#endif
