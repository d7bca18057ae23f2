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

/* Allowed only when their first argument (a pid or thread-group id) is the helper's own: signals and pidfds
 * for anything but the helper itself are refused. */
static const long self_only[] = {
    SYS_kill, SYS_tkill, SYS_tgkill, SYS_rt_sigqueueinfo, SYS_rt_tgsigqueueinfo,
#ifdef SYS_pidfd_open
    SYS_pidfd_open,
#endif
};
#define SELF_ONLY_COUNT (sizeof(self_only) / sizeof(self_only[0]))

/* The low 32 bits of a system-call argument: the kernel reads pid_t and fcntl's command as 32-bit ints. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG_LOW(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#else
#define ARG_LOW(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#endif

int conveyor_install_helper_syscall_filter(int self_pid, int guard_signals) {
#if defined(CONVEYOR_AUDIT_ARCH)
    const struct sock_filter refuse = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
    const struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    /* Header (4, plus 2 for x32), a compare and a refusal per denied call, the signal guard (a compare and a
     * jump per self-only call, pidfd_send_signal, fcntl, allow, the pid check (3), the fcntl check (4)), and
     * the final allow. */
    struct sock_filter program[6 + 2 * DENIED_COUNT + 2 * SELF_ONLY_COUNT + 16 + 1];
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
    if (guard_signals) {
        /* Where Landlock cannot scope signals (before ABI 6), the filter does: kill and its relatives only for
         * the helper's own pid (baked in here; the helper never forks a process that would need another),
         * pidfd_send_signal never (its target is a descriptor the filter cannot see), and no F_SETOWN, which
         * would have the kernel send SIGIO to another process. */
        unsigned short jumps[SELF_ONLY_COUNT];
        for (size_t i = 0; i < SELF_ONLY_COUNT; i++) {
            program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)self_only[i], 0, 1);
            jumps[i] = n;
            program[n++] = (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, 0); /* to the pid check */
        }
#ifdef SYS_pidfd_send_signal
        program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_send_signal, 0, 1);
        program[n++] = refuse;
#endif
        program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_fcntl, 5, 0); /* to the fcntl check */
        program[n++] = allow;
        unsigned short pid_check = n;
        program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(0));
        program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)self_pid, 0, 1);
        program[n++] = allow;
        program[n++] = refuse;
        program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(1));
        program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETOWN, 2, 0);
        program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETOWN_EX, 1, 0);
        program[n++] = allow;
        program[n++] = refuse;
        for (size_t i = 0; i < SELF_ONLY_COUNT; i++) program[jumps[i]].k = (unsigned)(pid_check - jumps[i] - 1);
    }
    program[n++] = allow;
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
