#ifndef CONVEYOR_CSHIMS_LANDLOCK_H
#define CONVEYOR_CSHIMS_LANDLOCK_H

/* Confines this process with Landlock: below each `readable` path it may read files, list directories and
 * execute; below each `writable` path it may also create, write, truncate, rename and remove. Nothing else
 * can be opened. Paths that do not exist are skipped (each is opened now).
 * Landlock also refuses ptrace access (hence other processes' /proc environ, mem, maps, fd) to any process
 * outside this domain. From ABI 4 TCP bind/connect are refused; from ABI 6 signals and abstract Unix sockets reach only processes
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

/* CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: all a sandboxed helper keeps (files only). */
#define CONVEYOR_HELPER_KEPT_CAPABILITIES 0xFULL

/* Below these a confined helper may read (and execute). */
const char *const *conveyor_helper_readable_paths(int *count);

/* `conveyor helper` confines itself in the executable's constructor, before any thread exists (Landlock and
 * capabilities are per thread): with the sandbox (no --no-sandbox) it makes itself non-dumpable, applies
 * Landlock (readable paths above, --writable paths and --scratch writable, at most --landlock-abi) and drops
 * every capability but CONVEYOR_HELPER_KEPT_CAPABILITIES. These report what it did: the state (0: nothing,
 * not a sandboxed helper; 1: confined; a negative errno: `step` failed), the Landlock ABI in force (0: none),
 * and the arguments it read, which HelperServer compares with its own. */
int conveyor_helper_load_state(const char **step);
int conveyor_helper_load_abi(void);
long conveyor_helper_load_maximum_abi(void);
int conveyor_helper_load_writable_count(void);
const char *conveyor_helper_load_writable(int index);
const char *conveyor_helper_load_scratch(void);
#endif
