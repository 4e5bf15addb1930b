# Thin wrapper around CMake. `make run` and `make test` are the two commands
# the README promises; both install missing Debian packages when run as root.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CONFIG     ?= config/meridian.json
LISTEN     ?= 127.0.0.1:8080

DEB_PACKAGES := cmake pkg-config gcc make libuv1-dev libmicrohttpd-dev \
                libcurl4-openssl-dev libjansson-dev libcmocka-dev curl \
                nodejs nginx-light wrk clang libclang-rt-14-dev chromium \
                libhiredis-dev redis-server

.PHONY: all deps build build-asan run test test-normal test-asan format format-check clean

all: build

deps:
	@./scripts/install-deps $(DEB_PACKAGES)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(BUILD_ASAN)/CMakeCache.txt:
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DMERIDIAN_SANITIZE=ON

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps $(BUILD_ASAN)/CMakeCache.txt
	cmake --build $(BUILD_ASAN) -j $(JOBS)

run: build
	$(BUILD)/meridian --config $(CONFIG) --listen $(LISTEN)

test: test-normal test-asan

test-normal: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# Every C source and header of the project: the daemon (src/, src/providers/),
# its headers and the tests. format and format-check read the same list.
FORMAT_FILES = $(wildcard include/meridian/*.h src/*.c src/*.h src/providers/*.c \
                 src/providers/*.h tests/*/*.c tests/*/*.h)

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
