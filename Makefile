# Thin wrapper around CMake. `make run` and `make test` are the two commands
# the README promises; both install the missing Debian packages they need
# when run as root (scripts/install-deps), once per build tree: a stamp file
# in $(BUILD) remembers it (`make deps` or `make deps-test` checks again).
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
JOBS       ?= $(shell nproc)
CONFIG     ?= config/meridian.json
LISTEN     ?= 127.0.0.1:8080

# What building and running the daemon need (make build, make run).
RUN_PACKAGES := cmake pkg-config gcc make libc6-dev libuv1-dev libmicrohttpd-dev \
                libcurl4-openssl-dev libjansson-dev libhiredis-dev
# What the test suite needs on top (make test): cmocka; curl; Node.js and npm
# (SDK and browser tests); Chromium; nginx (the HTTP/2 test's h2c upstream)
# and openssl (its certificates); clang and its runtimes (fuzzers); Redis;
# promtool (package prometheus) for the metrics lint; wrk for bench/.
TEST_PACKAGES := libcmocka-dev curl nodejs npm chromium nginx-light openssl clang \
                 libclang-rt-14-dev redis-server prometheus wrk

DEPS_RUN  := $(BUILD)/.deps-run
DEPS_TEST := $(BUILD)/.deps-test

# ThreadSanitizer: the suppressions file says why each entry is there.
TSAN_ENV := TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: all deps deps-test deps-dry-run build build-asan build-tsan run test test-normal test-asan \
        test-tsan format format-check clean

all: build

# install-deps exits 3 when packages are missing but it is not root: go on
# (they may come from elsewhere) without the stamp, so the next build asks again.
define install_deps
	@mkdir -p $(BUILD)
	@rc=0; ./scripts/install-deps $(1) || rc=$$?; \
	  if [ $$rc -eq 0 ]; then touch $(2); elif [ $$rc -ne 3 ]; then exit $$rc; fi
endef

$(DEPS_RUN): Makefile scripts/install-deps
	$(call install_deps,$(RUN_PACKAGES),$@)

$(DEPS_TEST): $(DEPS_RUN)
	$(call install_deps,$(TEST_PACKAGES),$@)

deps:
	@rm -f $(DEPS_RUN) $(DEPS_TEST)
	@$(MAKE) --no-print-directory $(DEPS_RUN)

deps-test:
	@rm -f $(DEPS_RUN) $(DEPS_TEST)
	@$(MAKE) --no-print-directory $(DEPS_TEST)

# What each of the two commands would install on this machine (as anyone).
deps-dry-run:
	@printf 'make run:  '; ./scripts/install-deps --dry-run $(RUN_PACKAGES)
	@printf 'make test: '; ./scripts/install-deps --dry-run $(RUN_PACKAGES) $(TEST_PACKAGES)

# Without cmocka the default build leaves the tests out; the test targets
# configure again once their packages are in, and then require them.
$(BUILD)/CMakeCache.txt: | $(DEPS_RUN)
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(BUILD)/.tests-configured: $(DEPS_TEST) | $(BUILD)/CMakeCache.txt
	cmake -S . -B $(BUILD) -DMERIDIAN_REQUIRE_TESTS=ON >/dev/null
	@touch $@

$(BUILD_ASAN)/CMakeCache.txt: | $(DEPS_TEST)
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DMERIDIAN_SANITIZE=ON \
	  -DMERIDIAN_REQUIRE_TESTS=ON

# RelWithDebInfo: ThreadSanitizer costs 5-15x; -O2 keeps the suite in budget.
$(BUILD_TSAN)/CMakeCache.txt: | $(DEPS_TEST)
	cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMERIDIAN_TSAN=ON \
	  -DMERIDIAN_REQUIRE_TESTS=ON

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan: $(BUILD_ASAN)/CMakeCache.txt
	cmake --build $(BUILD_ASAN) -j $(JOBS)

build-tsan: $(BUILD_TSAN)/CMakeCache.txt
	cmake --build $(BUILD_TSAN) -j $(JOBS)

run: build
	$(BUILD)/meridian --config $(CONFIG) --listen $(LISTEN)

# Each tree's run lists its skipped tests and why; with CI=true a skip fails
# (scripts/ctest-run). The last step lists every tree's skips together.
test: test-normal test-asan test-tsan
	@./scripts/ctest-run --summary $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN)

test-normal: $(BUILD)/.tests-configured
	cmake --build $(BUILD) -j $(JOBS)
	./scripts/ctest-run $(BUILD) -j $(JOBS)

test-asan: build-asan
	$(ASAN_ENV) ./scripts/ctest-run $(BUILD_ASAN) -j $(JOBS)

# Unit and integration tests (the SDK, Claude Code, browser and soak runs add no thread
# the daemon does not already have in the integration tests); the daemon's
# tests run one at a time there (RUN_SERIAL, tests/CMakeLists.txt).
test-tsan: build-tsan
	$(TSAN_ENV) ./scripts/ctest-run $(BUILD_TSAN) -j $(JOBS) -L "unit|integration" \
	  -E "^(sdk|claude|browser)\."

# Every C source and header of the project: the daemon (src/, src/providers/),
# its headers and the tests. format and format-check read the same list.
FORMAT_FILES = $(wildcard include/meridian/*.h src/*.c src/*.h src/providers/*.c \
                 src/providers/*.h tests/*/*.c tests/*/*.h)

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN)
