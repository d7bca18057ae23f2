#ifndef CONVEYOR_CSHIMS_LANDLOCK_H
#define CONVEYOR_CSHIMS_LANDLOCK_H

/* Confines this process with Landlock: below each `readable` path it may read files, list directories and
 * execute; below each `writable` path it may also create, write, truncate, rename and remove. Nothing else
 * can be opened. Paths that do not exist are skipped (each is opened now: `/proc/self/` names this process).
 * From ABI 4 TCP bind/connect are refused; from ABI 6 signals and abstract Unix sockets reach only processes
 * in this domain (LANDLOCK_SCOPE_SIGNAL, LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET). Uses at most `maximum_abi`
 * (the kernel's own when larger; 0 or less: no Landlock), so tests can stand for an older kernel.
 * Applies to every thread started afterwards; call it before any thread that must be confined is started,
 * or from the only thread.
 * Returns the Landlock ABI version in force (1 or more), or a negative errno: -EOPNOTSUPP or -ENOSYS where
 * Landlock is not available (no kernel support, a container's seccomp profile refuses it, or `maximum_abi`
 * is 0), another negative errno when a step failed. */
int conveyor_landlock_restrict(const char *const *readable, int readable_count,
                               const char *const *writable, int writable_count, int maximum_abi);

/* The Landlock ABI version this kernel offers (1 or more), or 0 when Landlock is not available here. */
int conveyor_landlock_abi(void);
#endif
