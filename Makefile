# gkd build. `make` builds libgkd.a and bin/gkd; `make test` runs the Check
# suites; `make dev` runs them built with -Werror; `make bench` runs the
# benchmarks; `make debug` builds with sanitizers.
# Sources are found by wildcard so a new module needs no Makefile edit.

PREFIX   ?= /usr/local
CC       ?= cc

# Dependencies (scripts/deps.sh): `make main`, `make test`, `make dev` and
# `make fuzz` install what is missing (as root, with apt-get; gnuplot too
# for the plot tests, node and npm for the tokenizer tests, clang when CC is clang, clang with its libFuzzer
# runtime for fuzz); every other goal only checks and prints the apt-get
# line; `make clean` does neither.
GOALS    := $(or $(MAKECMDGOALS),all)
DEPS_EXTRA := $(if $(findstring clang,$(CC)),clang) $(if $(filter fuzz,$(GOALS)),fuzz)
ifneq ($(filter main test dev fuzz,$(GOALS)),)
DEPS_RUN := ./scripts/deps.sh $(DEPS_EXTRA) $(if $(filter test dev,$(GOALS)),gnuplot node)
else ifneq ($(filter-out clean,$(GOALS)),)
DEPS_RUN := ./scripts/deps.sh --check $(DEPS_EXTRA)
endif
ifdef DEPS_RUN
ifneq ($(shell $(DEPS_RUN) >&2 && echo yes),yes)
$(error missing dependencies (see the line above))
endif
PKGS     := openblas check yaml-0.1
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs openblas yaml-0.1)
CHECK_LIBS := $(shell pkg-config --libs check)
endif

OPT      ?= -O2
# WERROR=1 (as `make dev` and CI build) turns warnings into errors.
WARN     := -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror)
# ISO C mode already keeps gcc from contracting a * b + c into a fused
# multiply-add; clang needs it said, or its results would differ in bits.
CFLAGS   += -std=c11 -ffp-contract=off $(WARN) $(OPT) -fopenmp -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -fopenmp -lm

BUILD    ?= build
# Rounds of interleaved gkd / PyTorch benchmark runs in `make bench`.
BENCH_ROUNDS ?= 5
LIB_SRC  := $(filter-out src/cli/%,$(wildcard src/*/*.c src/*/*/*.c))
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
BENCH_SRC:= $(wildcard bench/*.c)
BENCH_BIN:= $(BENCH_SRC:%.c=$(BUILD)/%)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o) $(BUILD)/tests/check_main.o $(BUILD)/tests/helpers.o
LIB      := $(BUILD)/libgkd.a
GKD      := bin/gkd

VERSION  := 0.1.0
CFLAGS   += -DGKD_VERSION=\"$(VERSION)\" -I$(BUILD)/gen

# Everything is rebuilt when the compiler or its flags change (CC=clang,
# WERROR=1, OPT=...): $(BUILD)/flags holds the last ones and, like the
# commit header below, is rewritten only when they change.
FLAGS    := $(CC) $(CFLAGS) $(LDFLAGS) $(LDLIBS)

.PHONY: all test dev bench debug test-debug install install-test clean main fuzz fixtures FORCE
all: $(GKD)

# Every object is built by this rule, with its dependency file (.d).
$(BUILD)/%.o: %.c $(BUILD)/flags | $(BUILD)/gen/gkd_commit.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The commit id for run.json and `gkd --version`, looked up at every build
# and rewritten only when it changes, so only the files that include it
# (runner.c, cli/main.c) are rebuilt after a commit.
$(BUILD)/gen/gkd_commit.h: FORCE
	@mkdir -p $(dir $@)
	@echo "#define GKD_GIT_COMMIT \"$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\"" > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

$(BUILD)/flags: FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' '$(subst ','"'"',$(FLAGS))' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The program collects every `int cmd_NAME(int argc, char **argv)` in
# src/cli/cmd_*.c, so a new subcommand is one new file.
$(BUILD)/src/cli/commands.h: $(wildcard src/cli/cmd_*.c)
	@mkdir -p $(dir $@)
	sed -n 's/^int cmd_\([a-z0-9_]*\)(int argc, char \*\*argv).*/X(\1)/p' $^ /dev/null > $@.tmp && mv $@.tmp $@

$(BUILD)/src/cli/main.o: $(BUILD)/src/cli/commands.h
$(BUILD)/src/cli/main.o: CFLAGS += -I$(BUILD)/src/cli

$(GKD): $(CLI_OBJ) $(LIB) $(BUILD)/flags
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDFLAGS) $(LDLIBS)

# The test runner collects every `Suite *NAME_suite(void)` in tests/test_*.c.
$(BUILD)/tests/suites.h: $(TEST_SRC)
	@mkdir -p $(dir $@)
	sed -n 's/^Suite \*\([a-z0-9_]*_suite\)(void).*/X(\1)/p' $(TEST_SRC) /dev/null > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/check_main.o: $(BUILD)/tests/suites.h
$(BUILD)/tests/check_main.o: CFLAGS += -I$(BUILD)/tests

$(BUILD)/gkd_tests: $(TEST_OBJ) $(LIB) $(BUILD)/flags
	$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) $(LIB) $(LDFLAGS) $(LDLIBS) $(CHECK_LIBS)

# Llama 2's tokenizer for the subword_spm suite, in the two layouts gkd
# reads, written from the npm package tools/tokenizer_oracles_llama pins
# (not committed: Llama 2 Community License, docs/tokenizers.md). The
# packages are installed under $(BUILD), never in the source tree. Without
# npm or the registry the suite prints a notice and skips those checks.
LLAMA2_NPM   := $(BUILD)/tokenizers/npm
LLAMA2_VOCAB := $(BUILD)/tokenizers/llama2/tokenizer.bin
$(LLAMA2_VOCAB): tools/tokenizer_oracles_llama/package.json tools/tokenizer_oracles_llama/package-lock.json \
		tools/tokenizer_oracles_llama/llama2_vocab.mjs
	@mkdir -p $(LLAMA2_NPM) $(dir $@)
	@cp tools/tokenizer_oracles_llama/package.json tools/tokenizer_oracles_llama/package-lock.json \
	  tools/tokenizer_oracles_llama/llama2_vocab.mjs $(LLAMA2_NPM)/
	@if (cd $(LLAMA2_NPM) && npm ci --no-audit --no-fund --loglevel=error >/dev/null && \
	     node llama2_vocab.mjs $(abspath $(dir $@))); then :; else \
	  rm -f $@; echo "llama2 tokenizer: npm or node failed; the subword_spm suite skips its Llama 2 checks"; \
	  if [ -n "$${GKD_REQUIRE_NPM:-}" ] && [ "$${GKD_REQUIRE_NPM}" != 0 ]; then exit 1; fi; fi

# SUITE=name runs one suite; the TAP log goes to build/tests.tap. The
# architecture suite checks the layer rule of docs/architecture.md and that
# no two files of $(LIB) call each other in a circle.
test: $(BUILD)/gkd_tests $(GKD) $(LLAMA2_VOCAB)
	GKD_BIN=$(abspath $(GKD)) GKD_ROOT=$(CURDIR) GKD_LIB=$(abspath $(LIB)) GKD_BUILD=$(abspath $(BUILD)) \
	  ./$(BUILD)/gkd_tests $(SUITE)


# Developers and CI: every program and test built with -Werror, then the
# suites. (Switching between `make dev` and `make` rebuilds everything.)
dev:
	$(MAKE) WERROR=1 $(GKD) $(BUILD)/gkd_tests $(BENCH_BIN) $(BUILD)/tests/slurm/slurm_driver
	$(MAKE) WERROR=1 test

main: $(GKD)
	./$(GKD) run experiments/quickstart.yaml --jobs 2
	@echo
	./$(GKD) table results/quickstart --rows divergence --cols lambda --metric exact_match --reference teacher,init --baseline lambda=0 --power

$(BUILD)/bench/%: bench/%.c $(LIB) $(BUILD)/flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS)

bench: $(BENCH_BIN)
	@rm -f $(BUILD)/bench.txt
	@# The tokenizer's peers are the JavaScript encoders its fixtures come from.
	@if command -v npm >/dev/null 2>&1; then (cd tools/tokenizer_oracles && \
	  npm ci --no-audit --no-fund --loglevel=error >/dev/null) || echo "bench: npm ci failed; tokenizer peers skipped"; \
	else echo "bench: npm not installed; tokenizer peers skipped"; fi
	@echo "== gkd and its PyTorch and JavaScript peers, interleaved ($(BENCH_ROUNDS) rounds)"
	@./bench/rounds.sh $(BUILD) $(BENCH_ROUNDS) $(BUILD)/bench.txt
	@/usr/bin/python3 -c 'import torch' 2>/dev/null || \
	  echo "bench: python3-torch not installed; PyTorch peers skipped (apt-get install python3-torch)"
	@echo "== peak memory of one GKD step at V = 50257, B = 16, T = 256 (a process per case)"
	@for c in v50k-dense v50k-topk64; do \
	  out=$$(OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} ./$(BUILD)/bench/bench_gkd $$c) || exit 1; \
	  printf '%s\n' "$$out" | tee -a $(BUILD)/bench.txt; done
	@if /usr/bin/python3 -c 'import torch' 2>/dev/null; then \
	  out=$$(/usr/bin/python3 bench/peer_torch_gkd.py v50k-dense) || exit 1; \
	  printf '%s\n' "$$out" | tee -a $(BUILD)/bench.txt; fi
	@awk -f bench/ratios.awk $(BUILD)/bench.txt

# AddressSanitizer (leaks included) and UBSan: `make debug` builds into
# build-debug/, `make test-debug` runs every suite there. Any report fails
# the run (UBSan does not recover). -O1 keeps the suites' time bearable
# (about 6 minutes on 2 cores) and changes no bits.
SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all
DEBUG_MAKE := $(MAKE) BUILD=build-debug OPT="-O1 -g $(SAN) -fno-omit-frame-pointer" \
	  LDFLAGS="$(SAN)" GKD=bin/gkd-debug
# (`+`: the sub-make is hidden in a variable, so make must be told to share
# its job slots with it.)
debug:
	+$(DEBUG_MAKE) bin/gkd-debug build-debug/gkd_tests

test-debug:
	+ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	CK_TIMEOUT_MULTIPLIER=10 $(DEBUG_MAKE) test

install: $(GKD) $(LIB)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/gkd
	install -m 755 $(GKD) $(DESTDIR)$(PREFIX)/bin/gkd
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libgkd.a
	install -m 644 include/gkd/*.h $(DESTDIR)$(PREFIX)/include/gkd/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' gkd.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/gkd.pc

# The installed library as a user sees it: install into a temporary prefix,
# then build tests/install/hello.c as C and as C++ with nothing but
# `pkg-config --cflags --libs gkd`, and run it.
install-test: $(GKD) $(LIB)
	rm -rf $(BUILD)/install-test
	$(MAKE) install PREFIX=$(abspath $(BUILD)/install-test/prefix)
	CC="$(CC)" tests/install/test_pkgconfig.sh $(abspath $(BUILD)/install-test)

clean:
	rm -rf $(sort $(BUILD) build build-clang build-debug build-fuzz) bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- Slurm integration test (separate from `make test`) --------------------
# Brings up a real single-node Slurm (tests/slurm/start.sh: as root, installs
# slurm-wlm and munge if missing), submits job arrays through libgkd, checks
# the outputs and `gkd status`, and stops Slurm again; then runs a tiny grid
# with `gkd run --executor slurm` and compares it with a local run.
.PHONY: slurm-test
$(BUILD)/tests/slurm/slurm_driver: tests/slurm/slurm_driver.c $(LIB) $(BUILD)/flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS)

slurm-test: $(BUILD)/tests/slurm/slurm_driver $(GKD)
	GKD_BIN=$(abspath $(GKD)) SLURM_DRIVER=$(abspath $(BUILD)/tests/slurm/slurm_driver) \
	  tests/slurm/test_slurm_submit.sh
	GKD_BIN=$(abspath $(GKD)) tests/slurm/test_gkd_run_slurm.sh

# ---- fuzz: libFuzzer targets for every reader of untrusted bytes (clang) ----
# `make fuzz` builds each fuzz/fuzz_NAME.c with ASan and UBSan against the
# library (all of src/ but the cli, as an archive: each target links what it
# uses) and runs the targets one after the other for FUZZ_SECONDS each;
# `make fuzz TARGET=NAME` runs one. Each target first replays the inputs of
# fuzz/regressions/NAME/ (any failure fails the run), then fuzzes from its
# corpus build-fuzz/corpus/NAME (new inputs go there), its seeds (made by
# fuzz/seeds.c with the library's own writers, or copied from the
# repository into build-fuzz/seeds/NAME, and fuzz/seeds/NAME) and its
# regressions, with fuzz/NAME.dict when there is one. A crash, leak or
# sanitizer report stops that target, keeps the input as
# build-fuzz/crash-NAME-* and fails the run after the others have run.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
# Longest input tried: 4 KiB, 16 KiB for checkpoints (a small model's seed
# is about 5 KiB).
FUZZ_MAX_LEN := 4096
FUZZ_MAX_LEN_checkpoint := 16384
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_RUN     := $(if $(filter command line,$(origin TARGET)),$(TARGET),$(FUZZ_TARGETS))
FUZZ_CFLAGS  := -std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
                -ffp-contract=off -fopenmp -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -DGKD_VERSION=\"$(VERSION)\" \
                -Iinclude -Isrc -Ibuild-fuzz/gen -Wall -Wno-unknown-pragmas $(PKG_CFLAGS)
FUZZ_LIBS    := $(PKG_LIBS) -fopenmp -lm
FUZZ_LIB     := build-fuzz/libgkd-fuzz.a
FUZZ_MAX_LENS := $(foreach t,$(FUZZ_TARGETS),$(t):$(or $(FUZZ_MAX_LEN_$(t)),$(FUZZ_MAX_LEN)))
FUZZ_FLAGS   := $(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_LIBS)

ifneq ($(filter fuzz,$(GOALS)),)
ifneq ($(filter-out $(FUZZ_TARGETS),$(FUZZ_RUN)),)
$(error TARGET: no fuzz/fuzz_$(firstword $(filter-out $(FUZZ_TARGETS),$(FUZZ_RUN))).c; targets: $(FUZZ_TARGETS))
endif
endif
# Header dependencies also when a target is built by name (make
# build-fuzz/fuzz_NAME): without them an object kept an old struct layout.
ifneq ($(filter fuzz build-fuzz/%,$(GOALS)),)
-include $(shell find build-fuzz/obj -name '*.d' 2>/dev/null)
endif

build-fuzz/flags: FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' '$(subst ','"'"',$(FUZZ_FLAGS))' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

build-fuzz/gen/gkd_commit.h: FORCE
	@mkdir -p $(dir $@)
	@echo "#define GKD_GIT_COMMIT \"$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\"" > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

build-fuzz/obj/%.o: %.c build-fuzz/flags | build-fuzz/gen/gkd_commit.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_LIB): $(LIB_SRC:%.c=build-fuzz/obj/%.o)
	rm -f $@ && ar rcs $@ $^

build-fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(FUZZ_LIBS)

build-fuzz/seeds-bin: fuzz/seeds.c fuzz/fuzz.h $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -o $@ $< $(FUZZ_LIB) $(FUZZ_LIBS)

# Copy files into a seed directory under names made from their paths.
FUZZ_COPY = for f in $(2); do [ -f "$$f" ] && cp "$$f" "build-fuzz/seeds/$(1)/$$(echo "$$f" | tr '/' '_')"; done; true

build-fuzz/seeds/.stamp: build-fuzz/seeds-bin $(wildcard fuzz/seeds/*/*)
	rm -rf build-fuzz/seeds
	mkdir -p $(FUZZ_TARGETS:%=build-fuzz/seeds/%)
	./build-fuzz/seeds-bin build-fuzz/seeds $$(find tests/fixtures/results -name '*.csv' | sort)
	@$(call FUZZ_COPY,experiment,experiments/*.yaml tests/fixtures/experiments/*.yaml)
	@$(call FUZZ_COPY,csv,$$(find tests/fixtures/results -name '*.csv' | sort) results/*/grid.csv)
	@$(call FUZZ_COPY,tasks,tests/fixtures/*.tsv docs/architecture.md)
	@$(call FUZZ_COPY,run_options,$$(find results -name options.txt | sort | head -n 3))
	@$(call FUZZ_COPY,safetensors,tests/fixtures/tensors/*.safetensors)
	@$(call FUZZ_COPY,llama2c,tests/fixtures/tensors/*.bin)
	@$(call FUZZ_COPY,hf_config,tests/fixtures/models/*/config.json)
	@touch $@

fuzz: $(FUZZ_RUN:%=build-fuzz/fuzz_%) build-fuzz/seeds/.stamp
	@fail=; for t in $(FUZZ_RUN); do \
	  mkdir -p build-fuzz/corpus/$$t; \
	  dirs=; for d in build-fuzz/seeds/$$t fuzz/seeds/$$t fuzz/regressions/$$t; do [ -d $$d ] && dirs="$$dirs $$d"; done; \
	  dict=; [ -f fuzz/$$t.dict ] && dict=-dict=fuzz/$$t.dict; \
	  ml=$$(for p in $(FUZZ_MAX_LENS); do [ "$${p%%:*}" = $$t ] && echo "$${p#*:}"; done); \
	  regs=$$(find fuzz/regressions/$$t -type f 2>/dev/null | sort); \
	  echo "== fuzz $$t: $$(echo $$regs | wc -w) regression inputs, then $(FUZZ_SECONDS) s"; \
	  if [ -n "$$regs" ] && ! ./build-fuzz/fuzz_$$t -runs=1 $$regs >build-fuzz/replay-$$t.log 2>&1; then \
	    cat build-fuzz/replay-$$t.log; fail="$$fail $$t"; continue; fi; \
	  ./build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$ml -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/crash-$$t- $$dict build-fuzz/corpus/$$t $$dirs || fail="$$fail $$t"; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: failed:$$fail (inputs in build-fuzz/crash-*)"; exit 1; fi
