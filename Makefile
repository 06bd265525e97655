# The README's two commands. Each does its own set-up on a fresh Debian 12 machine (as
# root): installs what is missing, configures, builds, then runs.
BUILD ?= build
JOBS ?= $(shell nproc)
DEPS = cmake make gcc pkg-config protobuf-c-compiler libprotobuf-c-dev librdkafka-dev \
       librocksdb-dev libzstd-dev libjemalloc-dev libcmocka-dev libck-dev libxxhash-dev \
       libjansson-dev libyaml-dev libhyperscan-dev libpcre2-dev libmicrohttpd-dev kcat \
       gnuplot-nox clang libclang-rt-14-dev curl libssl-dev \
       libevtx-dev libbfio-dev libxml2-dev

.PHONY: all deps build demo test test-asan clean format

all: build

deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "run as root, or install:" $$missing; exit 1; fi; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/vigil demo

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# The suite again under AddressSanitizer and UndefinedBehaviorSanitizer. The slow label
# (SIGKILL crash runs, overload for a minute: whole-process tests of the same code the
# kafka label covers in-process) is left out here, where it would take several times as
# long; ASAN_CTEST_ARGS= runs it too.
ASAN_CTEST_ARGS ?= -LE slow
test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVIGIL_SANITIZE=address,undefined
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS) $(ASAN_CTEST_ARGS) $(CTEST_ARGS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan
