# Petrel's build. Nothing else is needed to build, run or test: missing Debian packages are
# installed by docker/install-deps.sh (the Dockerfile uses the same script).
#
#   make run      build build/petrel and run it on config/examples/
#   make test     include-layer check, unit tests, fuzz-corpus replay, end-to-end tests
#   make layers   the include-layer check alone (tests/check_layers.py and its own test)
#   make asan     the whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make tsan     the whole test suite under ThreadSanitizer (tests/tsan.supp: known false reports)
#   make bench    Petrel, HAProxy and nginx side by side (writes docs/benchmarks.md)
#   make soak     the soak test's long form: 1,000,000 requests, a reload every 10 s
#   make fuzz     libFuzzer drivers (clang), run for FUZZ_SECONDS each
#   make format / check-format, make clean

CC       ?= cc
WERROR   ?= 1
PYTHON   ?= /usr/bin/python3
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
FUZZ_SECONDS ?= 60
# What makes $(DEPS_STAMP): installs the missing Debian packages (the llhttp sources among them).
INSTALL_DEPS ?= sh docker/install-deps.sh

CFLAGS_WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
              -Wundef -Wformat=2 -Wno-unused-parameter $(if $(WERROR),-Werror)
CFLAGS_OPT ?= -O2 -g
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -fno-strict-aliasing -fstack-protector-strong -pthread \
              -I. -I$(LLHTTP_INC)
SAN_FLAGS   = -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=all

ifeq ($(SANITIZER),address)
  BUILD ?= build/asan
  CFLAGS_OPT = $(SAN_FLAGS)
  CFLAGS_SAN = -fsanitize=address,undefined
else ifeq ($(SANITIZER),thread)
  BUILD ?= build/tsan
  CFLAGS_OPT = $(SAN_FLAGS)
  CFLAGS_SAN = -fsanitize=thread
else ifeq ($(SANITIZER),undefined)
  BUILD ?= build/ubsan
  CFLAGS_OPT = $(SAN_FLAGS)
  CFLAGS_SAN = -fsanitize=undefined
else ifeq ($(FUZZ),1)
  BUILD ?= build/fuzz
  CFLAGS_OPT = $(SAN_FLAGS)
  CFLAGS_SAN = -fsanitize=fuzzer-no-link,address,undefined
else
  BUILD ?= build
  CFLAGS_SAN =
  CFLAGS_BASE += -D_FORTIFY_SOURCE=2
endif

ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS_OPT) $(CFLAGS_SAN) $(CFLAGS_WARN) $(CFLAGS)
# OpenSSL is not linked into petrel: tls/openssl.c dlopen()s it when a config first needs TLS.
# The tests that make certificates with OpenSSL themselves link it (TEST_LIBS).
LIBS = -luv -lyaml -lpcre2-8 -lcares $(shell pkg-config --libs libnghttp2) -lm -pthread -ldl
TEST_LIBS = $(LIBS) -lssl -lcrypto

LIB_SRCS  = $(filter-out proxy/main.c,$(wildcard proxy/*.c proxy/*/*.c config/*.c xds/*.c tls/*.c filters/*.c filters/*/*.c))
LIB_OBJS  = $(LIB_SRCS:%.c=$(BUILD)/%.o)
LLHTTP_OBJS = $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o
UNIT_SRCS = $(wildcard tests/unit/*/*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz_*.c)
REPLAY_BINS = $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/tests/replay/%)
FUZZ_BINS = $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/tests/fuzzer/%)
DEPS_STAMP = build/.deps-installed

.PHONY: all run test layers unit e2e fuzz-replay asan tsan bench soak fuzz deps format check-format clean
.DEFAULT_GOAL := all

all: $(BUILD)/petrel

# Installs what is missing (Debian packages); re-run when the package list changes.
$(DEPS_STAMP): docker/install-deps.sh
	@$(INSTALL_DEPS)
	@mkdir -p $(@D) && touch $@
deps: $(DEPS_STAMP)

run: $(BUILD)/petrel
	$(BUILD)/petrel run -c config/examples/

# The llhttp sources come with a package, so on a fresh machine they appear only once the deps
# step has run. Make picks a pattern rule before running anything and passes over one whose
# source neither exists nor has a rule: this rule makes them ought-to-exist files of that step.
$(LLHTTP_OBJS:$(BUILD)/llhttp/%.o=$(LLHTTP_SRC)/%.c): $(DEPS_STAMP)
	@test -f $@ || { echo "$@: missing after installing the dependencies" >&2; exit 1; }

$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) -std=c11 $(CFLAGS_OPT) $(CFLAGS_SAN) -DLLHTTP_STRICT_MODE=1 -I$(LLHTTP_INC) -w -c $< -o $@

$(BUILD)/%.o: %.c $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libpetrel.a: $(LIB_OBJS) $(LLHTTP_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/petrel: $(BUILD)/proxy/main.o $(BUILD)/libpetrel.a
	$(CC) $(CFLAGS_OPT) $(CFLAGS_SAN) -o $@ $^ $(LIBS)

# A unit test may #include the .c it tests to reach its statics; it links the library for the rest.
$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/test.h $(wildcard tests/unit/*/*.h) $(BUILD)/libpetrel.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libpetrel.a $(TEST_LIBS)

# The libFuzzer drivers linked to a plain main() that replays their corpus: runs on any compiler.
$(BUILD)/tests/replay/%: tests/fuzz/%.c tests/fuzz/replay_main.c $(BUILD)/libpetrel.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< tests/fuzz/replay_main.c $(BUILD)/libpetrel.a $(TEST_LIBS)

$(BUILD)/tests/fuzzer/%: tests/fuzz/%.c $(BUILD)/libpetrel.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(BUILD)/libpetrel.a $(TEST_LIBS)

unit: $(UNIT_BINS)
	@sh tests/unit/run.sh $(UNIT_BINS)

fuzz-replay: $(REPLAY_BINS)
	@sh tests/fuzz/replay.sh $(BUILD)/tests/replay

# The OTLP receiver's npm packages (package-lock.json pins them), installed once.
OTEL_MODULES = tests/e2e/otel/node_modules
$(OTEL_MODULES): tests/e2e/otel/package-lock.json $(DEPS_STAMP)
	npm ci --prefix tests/e2e/otel --no-audit --no-fund
	@touch $@

# The Kubernetes and Istio API schemas the manifest tests check against, pinned the same way.
K8S_MODULES = tests/e2e/k8s/node_modules
$(K8S_MODULES): tests/e2e/k8s/package-lock.json $(DEPS_STAMP)
	npm ci --prefix tests/e2e/k8s --no-audit --no-fund
	@touch $@

# The Toxiproxy client the chaos API tests drive, pinned the same way.
CHAOS_MODULES = tests/e2e/chaos/node_modules
$(CHAOS_MODULES): tests/e2e/chaos/package-lock.json $(DEPS_STAMP)
	npm ci --prefix tests/e2e/chaos --no-audit --no-fund
	@touch $@

e2e: $(BUILD)/petrel $(OTEL_MODULES) $(K8S_MODULES) $(CHAOS_MODULES)
	PETREL_BIN=$(abspath $(BUILD)/petrel) $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

# Dependencies point down (docs/architecture.md, "Layers"): the checker's own test on small
# trees first, then the checker on this one.
layers:
	@$(PYTHON) tests/check_layers_test.py
	@$(PYTHON) tests/check_layers.py

test: layers unit fuzz-replay e2e

asan:
	$(MAKE) SANITIZER=address test

# TSan slows a test 5 to 15 times: the unit tests get 60 s each instead of 10.
tsan:
	TSAN_OPTIONS="suppressions=$(abspath tests/tsan.supp) second_deadlock_stack=1 $$TSAN_OPTIONS" \
	    PT_TEST_TIMEOUT=60 $(MAKE) SANITIZER=thread test

fuzz:
	$(MAKE) CC=clang FUZZ=1 fuzz-drivers
# New inputs go to build/fuzz/corpus/; the committed seed corpus is only read. Copy an input
# worth keeping (a fixed crash, new coverage) into tests/fuzz/corpus/ by hand.
fuzz-drivers: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p $(BUILD)/corpus/$$n; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -dict=tests/fuzz/$$n.dict \
	      $(BUILD)/corpus/$$n tests/fuzz/corpus/$$n || exit 1; done

# The long form of tests/e2e/test_45_soak.py (make e2e runs its short form); SOAK_REQUESTS and
# SOAK_RELOAD_SECONDS change it. Prints its figures on the line starting `soak:`.
SOAK_REQUESTS ?= 1000000
SOAK_RELOAD_SECONDS ?= 10
soak: $(BUILD)/petrel
	PETREL_SOAK_REQUESTS=$(SOAK_REQUESTS) PETREL_SOAK_RELOAD_SECONDS=$(SOAK_RELOAD_SECONDS) \
	    PETREL_BIN=$(abspath $(BUILD)/petrel) $(PYTHON) -m pytest -q -s -p no:cacheprovider \
	    tests/e2e/test_45_soak.py::test_soak

# BENCH_BASE: the git ref whose petrel runs beside this one (built in a temporary worktree under
# build/bench-base/); main by default, the main a branch is to merge into. Empty: not compared.
BENCH_BASE ?= main
bench: $(BUILD)/petrel
	BENCH_BASE='$(BENCH_BASE)' PETREL_BIN=$(abspath $(BUILD)/petrel) $(PYTHON) tests/bench/bench.py

FORMAT_SRCS = $(wildcard proxy/*.[ch] proxy/*/*.[ch] config/*.[ch] xds/*.[ch] tls/*.[ch] filters/*.[ch] filters/*/*.[ch] \
                         tests/unit/*.[ch] tests/unit/*/*.c tests/fuzz/*.c)
format:
	clang-format -i $(FORMAT_SRCS)
check-format:
	clang-format --dry-run --Werror $(FORMAT_SRCS)

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(BUILD)/proxy/main.d
