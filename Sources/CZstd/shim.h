#include <zstd.h>
// For ZDICT_trainFromBuffer_fastCover, whose segment size can be chosen: the stable
// ZDICT_trainFromBuffer tunes it for level-3 compression and picks dictionaries too small to help
// the levels chunks are recompressed at. Its parameters have kept their layout since zstd 1.3.
#define ZDICT_STATIC_LINKING_ONLY
#include <zdict.h>
