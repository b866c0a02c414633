#include "buildinfo.h"

// A C target because SwiftPM passes values only to C compilers (-Xcc -DNAME=VALUE): the release
// scripts name the commit there, and plain `swift build` leaves it unknown.
#ifndef CHUNKCACHE_COMMIT
#define CHUNKCACHE_COMMIT unknown
#endif
#define CHUNKCACHE_STRING(x) #x
#define CHUNKCACHE_EXPAND(x) CHUNKCACHE_STRING(x)

const char *chunkcache_commit(void) { return CHUNKCACHE_EXPAND(CHUNKCACHE_COMMIT); }
