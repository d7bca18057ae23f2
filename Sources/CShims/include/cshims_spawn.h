#ifndef CONVEYOR_CSHIMS_SPAWN_H
#define CONVEYOR_CSHIMS_SPAWN_H
#include <spawn.h>

/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34+), which Swift does not see without _GNU_SOURCE:
 * the child closes every descriptor from `from` up before exec. */
int conveyor_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from);

/* pthread_setname_np for the calling thread (what /proc/<pid>/task/<tid>/comm shows; 15 characters at most). */
int conveyor_set_thread_name(const char *name);
#endif
