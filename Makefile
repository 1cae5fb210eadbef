# redit — build, test, run, bench. GNU make; Debian 12 packages (tools/install-deps.sh).
#   make            build/libredit.a and build/redit
#   make run        build, then run the program's main job
#   make test       every cmocka suite and the command-line tests
#   make test-serve-load  64 concurrent streaming requests over mixed edit sets for 60 s against
#                   redit serve (tests/serve-load.sh; not part of make test)
#   make test-asan  the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-haswell  the same built for AVX2-only CPUs (-march=haswell: AVX2, FMA, F16C)
#   make fuzz       mutated input files read by the sanitizer build (tools/fuzz-loaders.py)
#   make check-reference  logits and gradients against the PyTorch reference implementation
#                   (RED; LoRA and IA3 logits against tests/tools/peft_ref.py)
#   make bench      throughput against same-run ceilings and peers (BENCH=small|7b|all, default
#                   all: about 20 + 20 minutes on 2 cores; LLAMA_BENCH=/path/to/llama-bench adds
#                   llama.cpp's rows to the 7b section; BENCH_ROUNDS=N its alternating rounds)
#   make bench-mpi  data-parallel RED training, 1 rank × 2 threads against 2 ranks × 1 thread
#   make analyze    gcc -fanalyzer and clang --analyze over src/: passes only with no finding

BUILD    ?= build
CC       ?= cc
PKGS      = openblas lua5.4 ncursesw readline cmocka libcjson libxxhash libprotobuf-c libmicrohttpd
OPT      ?= -O3 -march=native
CFLAGS_BASE = -std=c17 -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-psabi -g $(OPT) -Iinclude -pthread
ifeq ($(CI),true)
CFLAGS_BASE += -Werror
endif
SAN_FLAGS ?=
# Recursive (=) so pkg-config runs only after the dependency step has installed it.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
CFLAGS   = $(CFLAGS_BASE) $(SAN_FLAGS) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
# Open MPI (data-parallel training, src/train/dp.c) when its development files are there;
# without them redit runs one process and refuses an mpirun launch with a message.
MPI_OK     = $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1)
LDLIBS   = $(PKG_LIBS) $(if $(MPI_OK),$(shell pkg-config --libs ompi-c)) -lm -lpthread

# The engine and the Lua binding (tests drive the `red` module through it) form the library;
# the TUI is a second library (its pure parts are unit-tested); the command line links both.
LIB_SRC  := $(sort $(wildcard src/core/*.c src/text/*.c src/io/*.c src/model/*.c src/gen/*.c src/data/*.c src/train/*.c src/lua/*.c))
TUI_SRC  := $(sort $(wildcard src/tui/*.c))
SERVE_SRC := $(sort $(wildcard src/serve/*.c))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
HELP_SRC := $(sort $(wildcard tests/helpers/*.c))

# Code generated at build time: protoc-c's reader of SentencePiece's tokenizer.model
# (src/io/spm_model.proto) belongs to the io floor, which alone includes it.
GEN_IO   := $(BUILD)/gen/io
GEN_OBJ  := $(BUILD)/obj/gen/io/spm_model.pb-c.o
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(GEN_OBJ)
TUI_OBJ  := $(TUI_SRC:%.c=$(BUILD)/obj/%.o)
SERVE_OBJ := $(SERVE_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
HELP_OBJ := $(HELP_SRC:%.c=$(BUILD)/obj/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: FORCE all run demo test test-asan test-serve-load test-haswell fuzz bench bench-mpi clean deps check-reference default-model datasets analyze
# keep test objects (make would delete them as intermediates)
.SECONDARY:
all: $(BUILD)/libredit.a $(BUILD)/libredit_tui.a $(BUILD)/libredit_serve.a $(BUILD)/redit

deps: $(DEPS_STAMP)
$(DEPS_STAMP): tools/install-deps.sh
	@mkdir -p $(BUILD)
	@sh tools/install-deps.sh
	@touch $@

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(GEN_IO)/spm_model.pb-c.c $(GEN_IO)/spm_model.pb-c.h &: src/io/spm_model.proto | $(DEPS_STAMP)
	@mkdir -p $(GEN_IO)
	protoc-c --proto_path=src/io --c_out=$(GEN_IO) src/io/spm_model.proto
$(GEN_OBJ): $(GEN_IO)/spm_model.pb-c.c $(GEN_IO)/spm_model.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(GEN_IO) -MMD -MP -c $< -o $@
$(BUILD)/obj/src/io/vocab_spm.o: $(GEN_IO)/spm_model.pb-c.h
$(BUILD)/obj/src/io/%.o: EXTRA_CFLAGS += -I$(GEN_IO)

$(BUILD)/obj/tests/%.o: EXTRA_CFLAGS += -Itests/helpers -Isrc
$(BUILD)/obj/src/train/dp.o: EXTRA_CFLAGS += $(if $(MPI_OK),-DRD_HAVE_MPI $(shell pkg-config --cflags ompi-c))
# the engine reaches its internal headers as "core/kernels.h" (tools/check-layers.py keeps them
# out of the layers above it)
$(foreach f,core io text model gen data train,$(eval $(BUILD)/obj/src/$(f)/%.o: EXTRA_CFLAGS += -Isrc))

# `redit --version` shows the release number (include/redit/version.h) and, in a git checkout,
# `git describe`; version.o is rebuilt when the description changes (the stamp is rewritten
# only then).
GIT_DESCRIBE := $(shell git describe --tags --always --dirty 2>/dev/null)
$(BUILD)/obj/src/core/version.o: EXTRA_CFLAGS += $(if $(GIT_DESCRIBE),-DRD_GIT_DESCRIBE='"$(GIT_DESCRIBE)"')
$(BUILD)/obj/src/core/version.o: $(BUILD)/git-describe
$(BUILD)/git-describe: FORCE
	@mkdir -p $(BUILD); echo '$(GIT_DESCRIBE)' >$@.tmp; \
	    if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
FORCE:

$(BUILD)/libredit.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libredit_tui.a: $(TUI_OBJ)
	@rm -f $@
	ar rcs $@ $^

# the HTTP server (redit serve): a library of its own floor between lua and tui
$(BUILD)/libredit_serve.a: $(SERVE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/redit: $(CLI_OBJ) $(BUILD)/libredit_tui.a $(BUILD)/libredit_serve.a $(BUILD)/libredit.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libredit_tui.a $(BUILD)/libredit_serve.a $(BUILD)/libredit.a $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(HELP_OBJ) $(BUILD)/libredit_tui.a $(BUILD)/libredit.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(HELP_OBJ) $(BUILD)/libredit_tui.a $(BUILD)/libredit.a $(LDLIBS)

# The workbench on the bundled model, with a ready session: RED on the ffn output of every
# layer (3,072 numbers), the bundled instruction set (define-words), settings that show a
# result in minutes (README: "The first five minutes").
DEFAULT_MODEL := models/redit-base.gguf
# (--init-set: they seed a new session only; `make run` on an existing one restores it)
QUICKSTART_SETTINGS := --init-set sites=ffn --init-set lr=0.05 --init-set epochs=14 \
    --init-set batch=32 --init-set micro_batch=32 --init-set max_len=64 \
    --init-set template_name=red --init-set max_tokens=40 --init-set group_by_length=on
QUICKSTART := --session quickstart --train datasets/define-words/train.jsonl \
    --eval datasets/define-words/eval.jsonl $(QUICKSTART_SETTINGS)
run: all
	@if [ -f $(DEFAULT_MODEL) ]; then $(BUILD)/redit tui -m $(DEFAULT_MODEL) $(QUICKSTART); \
	else echo "no $(DEFAULT_MODEL) (make default-model builds it): a random-weight demo instead"; \
	    $(BUILD)/redit demo --dir $(BUILD)/demo; fi

# A small random-weight model in GGUF with a byte-level tokenizer, streaming a generation.
demo: all
	$(BUILD)/redit demo --dir $(BUILD)/demo

# The bundled data sets and base model, rebuilt from Debian and npm packages with fixed seeds
# (tools/default-model; the pretraining took 100 minutes on 2 cores for the committed model:
# models/README.md).
DM := $(BUILD)/default-model
datasets: all
	sh tools/default-model/datasets.sh datasets
default-model: all datasets
	sh tools/default-model/corpus.sh $(DM)/corpus
	sh tools/default-model/tokenizer.sh $(DM)/corpus $(DM)/tokenizer
	sh tools/default-model/check_tokenizer.sh $(DM)/corpus $(DM)/tokenizer $(BUILD)/redit
	REDIT=$(BUILD)/redit sh tools/default-model/pretrain.sh $(DM)/corpus $(DM)/tokenizer $(DM)/model
	$(BUILD)/redit convert -m $(DM)/model/model-f32.gguf --type F16 --name redit-base -o $(DEFAULT_MODEL)
	cp $(DM)/tokenizer/tokenizer.model models/redit-base.tokenizer.model

# Suites run one after another; the shell tests drive the redit binary end to end.
test: all $(TESTS)
	@sh tests/run-tests.sh $(BUILD)

ASAN_MAKE = $(MAKE) BUILD=build/asan OPT="-O1 -fno-omit-frame-pointer" \
    SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
test-asan:
	$(ASAN_MAKE) test

# redit serve under load: 64 concurrent streaming requests over mixed edit sets for 60 s (every
# response completes; greedy ones equal the single-sequence output). SERVE_LOAD_SECONDS=N.
test-serve-load: all
	BUILD=$(BUILD) sh tests/serve-load.sh

# The kernels' AVX2 paths (no AVX-512): quantized dots without VNNI, F16C rows, the bf16
# GEMM's portable fallback.
test-haswell:
	$(MAKE) BUILD=build/haswell OPT="-O3 -march=haswell" test

# Mutated model, tokenizer, edit and data files read by the sanitizer build (a few minutes;
# not part of `make test`). RUNS mutated files per kind.
RUNS ?= 60
fuzz:
	$(ASAN_MAKE) build/asan/redit
	/usr/bin/python3 tools/fuzz-loaders.py build/asan/redit --runs $(RUNS)

# The independent PyTorch reference (../shared/tools/torch_ref): logits and edit-vector
# gradients against redit's. Installs Debian's python3-torch when it is missing.
check-reference: all
	@/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || { \
	    echo "redit: installing python3-torch and python3-numpy for the reference check" >&2; \
	    if [ "$$(id -u)" -eq 0 ]; then S=""; else S=sudo; fi; \
	    $$S apt-get update -qq >&2; \
	    DEBIAN_FRONTEND=noninteractive $$S apt-get install -y -qq python3-torch python3-numpy >&2; }
	BUILD=$(BUILD) sh tests/reference/check.sh

# The 7b section writes a 4.1 GB Llama-2-7B-shaped Q4_K_M model into $(BUILD)/bench once; never
# part of `make test` or CI. llama.cpp is never built here: give LLAMA_BENCH or put llama-bench
# on PATH.
BENCH ?= all
bench: all
	@echo "build: $$(git rev-parse --short HEAD 2>/dev/null)$$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)'), $(CC) $(OPT)"
	$(BUILD)/redit bench --dir $(BUILD)/bench --sections $(BENCH) \
	    $(if $(LLAMA_BENCH),--llama-bench '$(LLAMA_BENCH)') $(if $(BENCH_ROUNDS),--rounds $(BENCH_ROUNDS))

# Data-parallel training on localhost: 1 rank × 2 threads against 2 ranks × 1 thread (mpirun;
# RED on the stories110M shape; docs/cluster.md). BENCH_ROUNDS=N alternating rounds (default 3).
bench-mpi: all
	BUILD=$(BUILD) sh tools/bench-mpi.sh

# Static analysis: gcc -fanalyzer and clang --analyze (clang from `tools/install-deps.sh
# analyze`, only for this target) on every C file of src/, any finding an error. One stamp
# per file and analyser, so -j2 runs two at a time and a re-run redoes only what changed;
# `make -k analyze` lists every finding. Not part of `make test` (a few minutes on 2 cores).
# Where a finding is a false positive, the narrowest suppression sits at the line, with a
# comment saying why.
ANALYZE_SRC   := $(LIB_SRC) $(TUI_SRC) $(SERVE_SRC) $(CLI_SRC)
ANALYZE_FLAGS  = -std=c17 -O2 -Wno-psabi -Iinclude -Isrc -I$(GEN_IO) -pthread $(PKG_CFLAGS)
ANALYZE_GCC   := $(ANALYZE_SRC:%.c=$(BUILD)/analyze/gcc/%.ok)
ANALYZE_CLANG := $(ANALYZE_SRC:%.c=$(BUILD)/analyze/clang/%.ok)
ANALYZE_DEPS  := $(BUILD)/.analyze-deps-ok
analyze: $(ANALYZE_GCC) $(ANALYZE_CLANG)
$(BUILD)/analyze/gcc/src/io/vocab_spm.ok $(BUILD)/analyze/clang/src/io/vocab_spm.ok: $(GEN_IO)/spm_model.pb-c.h
	@echo "analyze: no finding from gcc -fanalyzer or clang --analyze in $(words $(ANALYZE_SRC)) files"
$(ANALYZE_DEPS): tools/install-deps.sh
	@mkdir -p $(BUILD)
	@sh tools/install-deps.sh analyze
	@touch $@
$(BUILD)/analyze/gcc/%.ok: %.c | $(DEPS_STAMP) $(ANALYZE_DEPS)
	@mkdir -p $(dir $@)
	gcc $(ANALYZE_FLAGS) -fanalyzer -Werror -MMD -MP -MF $(@:.ok=.d) -MT $@ -c $< -o /dev/null
	@touch $@
$(BUILD)/analyze/clang/%.ok: %.c | $(DEPS_STAMP) $(ANALYZE_DEPS)
	@mkdir -p $(dir $@)
	clang $(ANALYZE_FLAGS) --analyze -Xclang -analyzer-werror -MMD -MP -MF $(@:.ok=.d) -MT $@ $< -o /dev/null
	@touch $@

clean:
	rm -rf build

-include $(wildcard $(ANALYZE_GCC:.ok=.d) $(ANALYZE_CLANG:.ok=.d))
-include $(LIB_OBJ:.o=.d) $(TUI_OBJ:.o=.d) $(SERVE_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(HELP_OBJ:.o=.d) $(TESTS:$(BUILD)/tests/%=$(BUILD)/obj/tests/%.d)
