#define _GNU_SOURCE
#include "cshims_landlock.h"
#include "cshims_spawn.h"

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

/* ---- The helper's confinement, applied when `conveyor helper` is loaded ----
 * Landlock (before ABI 8) and capset(2) act on the calling thread only. By the time Swift code runs, the async
 * main and its executor have started threads; confined later, those would keep the worker's view of the files,
 * its signals and, as root, CAP_SYS_PTRACE. So this runs as the executable's constructor, on the only thread,
 * for `conveyor helper` alone, and every thread started afterwards inherits it; HelperServer checks it read the
 * same arguments and adds the rlimits and the seccomp filter (which reaches every thread). */

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* All of /proc, though a rule on /proc/self/ alone would hide other processes' world-readable files: libdispatch's
 * worker monitor (the Swift runtime's threads) reads /proc/<tid>/stat of the helper's own threads, directories no
 * rule can name in advance, and crashes the helper when it cannot. Other processes' environ, mem, maps and fd stay
 * closed all the same: Landlock refuses ptrace access (which opening them needs) to any process outside the
 * helper's domain, and the worker is non-dumpable while the helper has no CAP_SYS_PTRACE. */
static const char *const helper_readable[] = {
    "/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/opt", "/sys", "/dev", "/proc",
    "/etc/ld.so.cache", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/localtime",
};

#define MAX_WRITABLE 64
static int load_state;        /* 0: not confined at load; 1: confined; -errno: a step failed */
static const char *load_step = "";
static int load_abi;
static long load_maximum_abi = -1;
static const char *load_writable[MAX_WRITABLE];
static int load_writable_count;
static const char *load_scratch;

const char *const *conveyor_helper_readable_paths(int *count) {
    *count = (int)(sizeof(helper_readable) / sizeof(helper_readable[0]));
    return helper_readable;
}

int conveyor_helper_load_state(const char **step) { *step = load_step; return load_state; }
int conveyor_helper_load_abi(void) { return load_abi; }
long conveyor_helper_load_maximum_abi(void) { return load_maximum_abi; }
int conveyor_helper_load_writable_count(void) { return load_writable_count; }
const char *conveyor_helper_load_writable(int index) {
    return index >= 0 && index < load_writable_count ? load_writable[index] : NULL;
}
const char *conveyor_helper_load_scratch(void) { return load_scratch; }

/* `--name value` or `--name=value`, as ArgumentParser reads them. */
static int option(int argc, char **argv, int *i, const char *name, const char **value) {
    size_t length = strlen(name);
    if (strncmp(argv[*i], name, length) != 0) return 0;
    if (argv[*i][length] == '=') { *value = argv[*i] + length + 1; return 1; }
    if (argv[*i][length] != '\0') return 0;
    if (*i + 1 >= argc) { *value = NULL; return 1; }
    *value = argv[++*i];
    return 1;
}

#if defined(__linux__)
__attribute__((constructor)) static void conveyor_confine_helper_at_load(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc < 2 || argv == NULL || argv[1] == NULL || strcmp(argv[1], "helper") != 0) return;
    int sandbox = 1;
    const char *value;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--no-sandbox") == 0) sandbox = 0;
        else if (strcmp(argv[i], "--sandbox") == 0) sandbox = 1;
        else if (option(argc, argv, &i, "--writable", &value)) {
            if (value == NULL || load_writable_count == MAX_WRITABLE) { load_state = -E2BIG; load_step = "--writable"; return; }
            load_writable[load_writable_count++] = value;
        } else if (option(argc, argv, &i, "--scratch", &value)) {
            load_scratch = value;
        } else if (option(argc, argv, &i, "--landlock-abi", &value)) {
            char *end = NULL;
            errno = 0;
            long n = value ? strtol(value, &end, 10) : 0;
            if (value == NULL || *value == '\0' || *end != '\0' || errno != 0 || n < INT_MIN || n > INT_MAX) {
                load_state = -EINVAL; load_step = "--landlock-abi"; return;
            }
            load_maximum_abi = n;
        } else if (option(argc, argv, &i, "--address-space-mb", &value) || option(argc, argv, &i, "--cpu-seconds", &value)
                   || option(argc, argv, &i, "--open-files", &value)) {
            /* read by HelperServer */
        }
    }
    if (!sandbox) return;
    int e = conveyor_set_dumpable(0);
    if (e != 0) { load_state = -e; load_step = "PR_SET_DUMPABLE"; return; }
    const char *writable[MAX_WRITABLE + 1];
    int count = 0;
    for (int i = 0; i < load_writable_count; i++) writable[count++] = load_writable[i];
    if (load_scratch) writable[count++] = load_scratch;
    int readable_count = 0;
    const char *const *readable = conveyor_helper_readable_paths(&readable_count);
    int abi = conveyor_landlock_restrict(readable, readable_count, writable, count,
                                         load_maximum_abi < 0 ? INT_MAX : (int)load_maximum_abi);
    if (abi > 0) load_abi = abi;
    else if (abi != -EOPNOTSUPP && abi != -ENOSYS) { load_state = abi; load_step = "Landlock"; return; }
    e = conveyor_drop_capabilities(CONVEYOR_HELPER_KEPT_CAPABILITIES);
    if (e != 0) { load_state = -e; load_step = "capabilities"; return; }
    load_state = 1;
}
#endif
