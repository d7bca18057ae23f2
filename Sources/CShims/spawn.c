#define _GNU_SOURCE
#include <spawn.h>
#include "cshims_spawn.h"

int conveyor_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}
