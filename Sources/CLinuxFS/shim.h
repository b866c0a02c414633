// Linux filesystem calls that Glibc's Swift module leaves out (statfs, for the filesystem type).
#if defined(__linux__)
#include <sys/vfs.h>
#endif
