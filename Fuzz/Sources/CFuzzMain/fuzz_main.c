// SwiftPM links an executable target on Linux with `--defsym main=<module>_main` (so that tests can
// link it); libFuzzer brings its own main. This gives SwiftPM the symbol it wants and hands the
// arguments to libFuzzer's driver (LLVMFuzzerRunDriver), with the Swift entry point.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int tangle_fuzz_main(int argc, char **argv) {
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}
