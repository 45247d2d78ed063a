// glibc's malloc tuning (mallopt, M_ARENA_MAX), which Swift's Glibc module does not export.
// Part of libc: nothing to link. Used by Workflow's Files.limitMallocArenas only.
#include <malloc.h>
