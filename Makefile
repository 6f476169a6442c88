# The whole set-up on a fresh machine is `make demo` (the main job) and `make test` (the tests).
SWIFT ?= swift
BUILD_FLAGS ?=

.PHONY: setup build demo test bench verify clean

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

clean:
	rm -rf .build
