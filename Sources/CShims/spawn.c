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
