#define _GNU_SOURCE
#include "cshims_landlock.h"

#include <errno.h>

#if defined(__linux__)
#include <fcntl.h>
#include <stddef.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Rights by ABI version; older kernel headers lack the newer names, the values are fixed by the ABI. */
#define ACCESS_ABI1 ((1ULL << 13) - 1) /* EXECUTE .. MAKE_SYM */
#define ACCESS_REFER (1ULL << 13)      /* ABI 2 */
#define ACCESS_TRUNCATE (1ULL << 14)   /* ABI 3 */
#define READ_RIGHTS ((1ULL << 0) | (1ULL << 2) | (1ULL << 3)) /* EXECUTE, READ_FILE, READ_DIR */
#define NET_TCP ((1ULL << 0) | (1ULL << 1))  /* ABI 4: BIND_TCP, CONNECT_TCP */
#define SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#define SCOPE_SIGNAL (1ULL << 1)               /* ABI 6 */

/* struct landlock_ruleset_attr as of ABI 6; the kernel reads only the size it is given. */
struct conveyor_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

static int add_rule(int ruleset, const char *path, uint64_t rights) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : -errno;
    struct landlock_path_beneath_attr rule = {.allowed_access = rights, .parent_fd = fd};
    struct stat st;
    /* A rule on a file may only carry file rights. */
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) rule.allowed_access &= (1ULL << 0) | (1ULL << 1) | (1ULL << 2) | ACCESS_TRUNCATE;
    long r = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
    int saved = errno;
    close(fd);
    return r == 0 ? 0 : -saved;
}

int conveyor_landlock_abi(void) {
#if defined(SYS_landlock_create_ruleset)
    /* EOPNOTSUPP: built but disabled; ENOSYS: not built; EPERM: a container's seccomp profile that predates
     * Landlock. All mean "not available here". */
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi > 0 ? (int)abi : 0;
#else
    return 0;
#endif
}

int conveyor_landlock_restrict(const char *const *readable, int readable_count,
                               const char *const *writable, int writable_count, int maximum_abi) {
#if defined(SYS_landlock_create_ruleset)
    int abi = conveyor_landlock_abi();
    if (abi == 0 || maximum_abi <= 0) return -EOPNOTSUPP;
    if (abi > maximum_abi) abi = maximum_abi;
    uint64_t handled = ACCESS_ABI1;
    if (abi >= 2) handled |= ACCESS_REFER;
    if (abi >= 3) handled |= ACCESS_TRUNCATE;
    struct conveyor_ruleset_attr attr = {.handled_access_fs = handled};
    size_t size = sizeof(attr.handled_access_fs);
    if (abi >= 4) {
        /* No TCP rule follows: binding and connecting are refused (the seccomp filter refuses sockets anyway). */
        attr.handled_access_net = NET_TCP;
        size = offsetof(struct conveyor_ruleset_attr, scoped);
    }
    if (abi >= 6) {
        /* Signals (kill, tgkill, pidfd_send_signal, SIGIO through F_SETOWN) and abstract Unix sockets reach only
         * processes inside this domain: the helper itself, never its worker or another helper. */
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL;
        size = sizeof(attr);
    }
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (ruleset < 0) return -errno;
    int result = 0;
    for (int i = 0; i < readable_count && result == 0; i++) result = add_rule(ruleset, readable[i], READ_RIGHTS & handled);
    for (int i = 0; i < writable_count && result == 0; i++) result = add_rule(ruleset, writable[i], handled);
    if (result == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) result = -errno;
    if (result == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) result = -errno;
    close(ruleset);
    return result == 0 ? abi : result;
#else
    (void)readable; (void)readable_count; (void)writable; (void)writable_count; (void)maximum_abi;
    return -ENOSYS;
#endif
}
#else
int conveyor_landlock_abi(void) { return 0; }

int conveyor_landlock_restrict(const char *const *readable, int readable_count,
                               const char *const *writable, int writable_count, int maximum_abi) {
    (void)readable; (void)readable_count; (void)writable; (void)writable_count; (void)maximum_abi;
    return -ENOSYS;
}
#endif
