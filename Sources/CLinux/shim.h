// Linux and glibc calls that Glibc's Swift module leaves out: statfs (for the filesystem type)
// and malloc_trim (to give freed memory back).
#if defined(__linux__)
#include <sys/vfs.h>
#include <malloc.h>
#endif
