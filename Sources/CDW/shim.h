// libdw / libdwfl from elfutils (Debian: libdw-dev): offline symbolization of trace stacks.
#include <elfutils/libdwfl.h>
#include <elfutils/libdw.h>
#include <dwarf.h>
#include <gelf.h>
