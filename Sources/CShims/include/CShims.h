#ifndef CONVEYOR_CSHIMS_H
#define CONVEYOR_CSHIMS_H
/* Each library's shims live in their own header next to this one. */
#include "cshims_av.h"
#include "cshims_vips.h"
#include "cshims_spawn.h"
#include "cshims_seccomp.h"
#include "cshims_landlock.h"
#endif
