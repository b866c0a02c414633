#ifndef CHUNKCACHE_BUILDINFO_H
#define CHUNKCACHE_BUILDINFO_H

/// The commit the binary was built from, as the build passed it (`-Xcc -DCHUNKCACHE_COMMIT=...`,
/// see scripts/lib/tools.sh), or "unknown" for a build that did not say.
const char *chunkcache_commit(void);

#endif
