#define _GNU_SOURCE
#include "cshims_seccomp.h"

#include <errno.h>

#if defined(__linux__)
#include <fcntl.h>
#include <stddef.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define CONVEYOR_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define CONVEYOR_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* Answered EPERM; everything not listed is allowed. */
static const long denied[] = {
    SYS_socket, SYS_socketpair, SYS_connect, SYS_bind, SYS_listen, SYS_accept, SYS_accept4,
    SYS_execve, SYS_execveat,
    SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev,
#ifdef SYS_pidfd_getfd
    SYS_pidfd_getfd,
#endif
    SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_setns, SYS_unshare,
    SYS_init_module, SYS_finit_module, SYS_delete_module, SYS_kexec_load,
#ifdef SYS_kexec_file_load
    SYS_kexec_file_load,
#endif
    SYS_reboot, SYS_swapon, SYS_swapoff, SYS_bpf, SYS_perf_event_open,
    SYS_keyctl, SYS_add_key, SYS_request_key, SYS_userfaultfd, SYS_open_by_handle_at,
#ifdef SYS_io_uring_setup
    SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
#endif
};
#define DENIED_COUNT (sizeof(denied) / sizeof(denied[0]))

/* The low 32 bits of a system-call argument: the kernel reads pid_t, `which` and fcntl's command as 32-bit ints. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG_LOW(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#else
#define ARG_LOW(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#endif

/* Checks some calls jump to: each ends in allow or refuse. */
enum check {
    SELF,              /* args[0] is the helper's own pid */
    SELF_OR_ZERO,      /* args[0] is 0 (the caller) or the helper's own pid */
    PROCESS_SELF,      /* args[0] is `process` (PRIO_PROCESS, IOPRIO_WHO_PROCESS) and args[1] 0 or the own pid */
    IOPRIO_SELF,
    NOT_SETOWN,        /* args[1] is neither F_SETOWN nor F_SETOWN_EX */
    CHECK_COUNT
};

struct guarded { long nr; enum check check; };

/* Calls that act on another process named by pid without ptrace's checks (a process of the same user passes):
 * prlimit64 would let a helper set its worker's RLIMIT_CPU (SIGXCPU ends it) or RLIMIT_NOFILE, the scheduler
 * calls would pin it to one CPU or SCHED_IDLE. Allowed for the helper itself only, always. */
static const struct guarded always[] = {
    {SYS_prlimit64, SELF_OR_ZERO}, {SYS_sched_setaffinity, SELF_OR_ZERO}, {SYS_sched_setscheduler, SELF_OR_ZERO},
    {SYS_sched_setparam, SELF_OR_ZERO},
#ifdef SYS_sched_setattr
    {SYS_sched_setattr, SELF_OR_ZERO},
#endif
    {SYS_setpriority, PROCESS_SELF}, {SYS_ioprio_set, IOPRIO_SELF},
};

/* Where Landlock cannot scope signals (before ABI 6): kill and its relatives and pidfd_open only for the
 * helper's own pid (baked in at installation; the helper never forks a process that would need another), and
 * no F_SETOWN, which would have the kernel send SIGIO to another process. pidfd_send_signal is refused
 * outright: its target is a descriptor the filter cannot see. */
static const struct guarded signalling[] = {
    {SYS_kill, SELF}, {SYS_tkill, SELF}, {SYS_tgkill, SELF}, {SYS_rt_sigqueueinfo, SELF},
    {SYS_rt_tgsigqueueinfo, SELF},
#ifdef SYS_pidfd_open
    {SYS_pidfd_open, SELF},
#endif
    {SYS_fcntl, NOT_SETOWN},
};

#define ALWAYS_COUNT (sizeof(always) / sizeof(always[0]))
#define SIGNALLING_COUNT (sizeof(signalling) / sizeof(signalling[0]))

int conveyor_install_helper_syscall_filter(int self_pid, int guard_signals) {
#if defined(CONVEYOR_AUDIT_ARCH)
    const struct sock_filter refuse = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
    const struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    enum { CAPACITY = 6 + 2 * DENIED_COUNT + 2 * (ALWAYS_COUNT + SIGNALLING_COUNT) + 2 + 1 + 8 * CHECK_COUNT };
    struct sock_filter program[CAPACITY];
    /* Where each jump to a check sits, and which check it goes to: fixed up once the checks are placed. */
    unsigned short jumps[ALWAYS_COUNT + SIGNALLING_COUNT];
    enum check targets[ALWAYS_COUNT + SIGNALLING_COUNT];
    unsigned short jump_count = 0;
    unsigned short n = 0;
    program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, CONVEYOR_AUDIT_ARCH, 1, 0);
    program[n++] = refuse;
    program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    /* x32 system calls share the architecture value and set bit 30. */
    program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1);
    program[n++] = refuse;
#endif
    for (size_t i = 0; i < DENIED_COUNT; i++) {
        program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)denied[i], 0, 1);
        program[n++] = refuse;
    }
    for (size_t i = 0; i < ALWAYS_COUNT + (guard_signals ? SIGNALLING_COUNT : 0); i++) {
        const struct guarded *rule = i < ALWAYS_COUNT ? &always[i] : &signalling[i - ALWAYS_COUNT];
        program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)rule->nr, 0, 1);
        jumps[jump_count] = n;
        targets[jump_count++] = rule->check;
        program[n++] = (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, 0);
    }
#ifdef SYS_pidfd_send_signal
    if (guard_signals) {
        program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_send_signal, 0, 1);
        program[n++] = refuse;
    }
#endif
    program[n++] = allow;
    unsigned short at[CHECK_COUNT];
    at[SELF] = n;
    program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(0));
    program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)self_pid, 0, 1);
    program[n++] = allow;
    program[n++] = refuse;
    at[SELF_OR_ZERO] = n;
    program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(0));
    program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0);
    program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)self_pid, 0, 1);
    program[n++] = allow;
    program[n++] = refuse;
    for (int which = 0; which < 2; which++) {
        at[which == 0 ? PROCESS_SELF : IOPRIO_SELF] = n;
        program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(0));
        /* PRIO_PROCESS is 0, IOPRIO_WHO_PROCESS 1. */
        program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, which == 0 ? 0u : 1u, 0, 4);
        program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(1));
        program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0);
        program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)self_pid, 0, 1);
        program[n++] = allow;
        program[n++] = refuse;
    }
    at[NOT_SETOWN] = n;
    program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(1));
    program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETOWN, 2, 0);
    program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETOWN_EX, 1, 0);
    program[n++] = allow;
    program[n++] = refuse;
    for (unsigned short i = 0; i < jump_count; i++) program[jumps[i]].k = (unsigned)(at[targets[i]] - jumps[i] - 1);
    struct sock_fprog filter = {.len = n, .filter = program};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
    /* SECCOMP_FILTER_FLAG_TSYNC: threads a library started before this call are filtered too. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &filter) != 0) {
        return errno;
    }
    return 0;
#else
    (void)self_pid; (void)guard_signals;
    return ENOSYS;
#endif
}
#else
int conveyor_install_helper_syscall_filter(int self_pid, int guard_signals) {
    (void)self_pid; (void)guard_signals;
    return ENOSYS;
}
#endif
