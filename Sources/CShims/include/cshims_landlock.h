#ifndef CONVEYOR_CSHIMS_LANDLOCK_H
#define CONVEYOR_CSHIMS_LANDLOCK_H

/* Confines this process's filesystem access with Landlock: below each `readable` path it may read files,
 * list directories and execute; below each `writable` path it may also create, write, truncate, rename and
 * remove. Nothing else can be opened. Paths that do not exist are skipped. Applies to every thread started
 * afterwards; call it before any thread that must be confined is started, or from the only thread.
 * Returns the Landlock ABI version in force (1 or more), or a negative errno: -EOPNOTSUPP or -ENOSYS where
 * Landlock is not available (no kernel support, or a container's seccomp profile refuses it), another
 * negative errno when a step failed. */
int conveyor_landlock_restrict(const char *const *readable, int readable_count,
                               const char *const *writable, int writable_count);

/* The Landlock ABI version this kernel offers (1 or more), or 0 when Landlock is not available here. */
int conveyor_landlock_abi(void);
#endif
