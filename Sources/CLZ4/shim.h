// liblz4's frame API (Debian: liblz4-dev). Trace files are LZ4 frames of JSON lines.
#include <lz4frame.h>
