#ifndef CONVEYOR_CSHIMS_SECCOMP_H
#define CONVEYOR_CSHIMS_SECCOMP_H

/* Installs the helper's system-call filter (seccomp-bpf, after PR_SET_NO_NEW_PRIVS). From then on this
 * process and every thread it starts get EPERM for: creating or using network endpoints (socket,
 * socketpair, connect, bind, listen, accept), running programs (execve, execveat), reaching other
 * processes (ptrace, process_vm_readv/writev, pidfd_getfd), kernel-facing administration (mount, umount2,
 * pivot_root, chroot, setns, unshare, module loading, kexec, reboot, swap, bpf, perf_event_open, keyctl,
 * add_key, request_key, userfaultfd, open_by_handle_at) and io_uring (whose operations bypass seccomp).
 * System calls of a foreign ABI (x32, i386 on x86-64) get EPERM too, and so do prlimit64,
 * sched_setaffinity, sched_setscheduler, sched_setparam, sched_setattr, setpriority and ioprio_set aimed at
 * any process but this one (pid 0 or `self_pid`). With `guard_signals` (for kernels whose Landlock cannot
 * scope signals), also: kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo and pidfd_open unless their
 * first argument is `self_pid`, pidfd_send_signal always, and fcntl's F_SETOWN and F_SETOWN_EX (SIGIO to
 * another process). Everything else is allowed: a decoder keeps reading files, allocating memory, starting
 * threads and signalling itself.
 * Returns 0, or an errno value (ENOSYS where seccomp is not available). */
int conveyor_install_helper_syscall_filter(int self_pid, int guard_signals);
#endif
