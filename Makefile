# The whole set-up on a fresh machine is `make demo` (the main job) and `make test` (the tests).
SWIFT ?= swift
BUILD_FLAGS ?=

.PHONY: setup build demo test bench verify clean fuzz install

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build $(BUILD_FLAGS)

demo: setup
	$(SWIFT) build -c release $(BUILD_FLAGS) --product tangle-scenarios
	$(SWIFT) build -c release $(BUILD_FLAGS) --product tangle
	./.build/release/tangle demo

test:
	@bash scripts/setup.sh --test
	$(SWIFT) test $(BUILD_FLAGS)

bench: setup
	$(SWIFT) build -c release $(BUILD_FLAGS)
	./.build/release/tangle bench record
	./.build/release/tangle bench runtime
	./.build/release/tangle bench analyze

# Ground truth on 2,000 generated programs (docs/ground-truth.md): exit status 1 on any mismatch.
verify: setup
	$(SWIFT) build -c release $(BUILD_FLAGS) --product tangle-scenarios
	$(SWIFT) build -c release $(BUILD_FLAGS) --product tangle
	./.build/release/tangle-scenarios generate --count 2000

# The libFuzzer target over the whole reading side (Fuzz/, a package of its own: in no product).
# New inputs go to Fuzz/.work/corpus, crashes to Fuzz/.work/crashes (keep each one in
# Fuzz/regressions: FuzzCorpusTests replays it in `make test`).
FUZZ_RUNS ?= 1000000
FUZZ_FLAGS ?= -max_len=8192 -timeout=20 -rss_limit_mb=2560
fuzz:
	@bash scripts/setup.sh --test
	cd Fuzz && $(SWIFT) build -c release -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address --product tangle-fuzz
	mkdir -p Fuzz/.work/corpus Fuzz/.work/crashes
	ASAN_OPTIONS=detect_leaks=0:malloc_context_size=0:quarantine_size_mb=8:max_malloc_fill_size=0 \
	Fuzz/.build/release/tangle-fuzz -runs=$(FUZZ_RUNS) $(FUZZ_FLAGS) -detect_leaks=0 -print_final_stats=1 \
	    -artifact_prefix=Fuzz/.work/crashes/ Fuzz/.work/corpus Fuzz/corpus

# The CLI on PATH: make install PREFIX=$$HOME/.local (default /usr/local).
PREFIX ?= /usr/local
install: setup
	$(SWIFT) build -c release $(BUILD_FLAGS) --product tangle
	install -d $(PREFIX)/bin
	install -m 0755 .build/release/tangle $(PREFIX)/bin/tangle

clean:
	rm -rf .build Fuzz/.build
