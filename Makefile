# oms — build, local stack, tests and benchmarks. `make help` lists the targets.
CC      ?= cc
PKGS    := rdkafka avro-c libwebsockets jansson libjwt libpq yaml-0.1 libcurl zlib
STATE   ?= $(CURDIR)/.oms
export OMS_STATE ?= $(STATE)
BUILD   := build

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASEFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -Ipkg -I$(BUILD)/gen $(PKG_CFLAGS)
CFLAGS   ?= -O2 -g
SANFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDLIBS   := $(PKG_LIBS) -lev -lcrypto -lpthread -lm

PKG_SRCS := $(sort $(wildcard pkg/*/*.c))
GEN_SRCS := $(BUILD)/gen/schemas_embed.c $(BUILD)/gen/migrations_embed.c
SCHEMAS  := $(sort $(wildcard schemas/*.avsc))
MIGRATIONS := $(sort $(wildcard migrations/[0-9]*.sql))

OBJ      := $(BUILD)/obj
SOBJ     := $(BUILD)/asan
LIB      := $(BUILD)/liboms.a
SLIB     := $(BUILD)/liboms-asan.a
PKG_OBJS  := $(PKG_SRCS:%.c=$(OBJ)/%.o) $(GEN_SRCS:$(BUILD)/%.c=$(OBJ)/%.o)
PKG_SOBJS := $(PKG_SRCS:%.c=$(SOBJ)/%.o) $(GEN_SRCS:$(BUILD)/%.c=$(SOBJ)/%.o)

PROGS    := omsd omsctl oms-producer
BINS     := $(PROGS:%=$(BUILD)/bin/%)
ASAN_BINS := $(PROGS:%=$(BUILD)/asan-bin/%)

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# a tool is one file (tests/tools/NAME.c) or a folder of files (tests/tools/NAME/*.c)
TOOL_SRCS := $(sort $(wildcard tests/tools/*.c))
TOOL_DIRS := $(patsubst %/,%,$(sort $(dir $(wildcard tests/tools/*/*.c))))
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tests/tools/%) \
             $(TOOL_DIRS:tests/tools/%=$(BUILD)/tests/tools/%)

.PHONY: all deps stack-up stack-down stack-env demo unit test integration bench clean help asan tools check-deps
.PHONY: fuzz fuzz-build fuzz-replay fuzz-test-bins

all: $(BINS)

help:
	@echo "make            build build/bin/omsd, omsctl, oms-producer"
	@echo "make deps       install missing Debian packages and the Kafka jars (idempotent)"
	@echo "make stack-up   start Kafka (KRaft) and PostgreSQL on loopback (idempotent);"
	@echo "                REGISTRY=1 also a schema registry (Apicurio, Confluent API)"
	@echo "make stack-down stop what stack-up started"
	@echo "make stack-env  print export lines for the running stack"
	@echo "make demo       the whole pipeline locally"
	@echo "make unit       unit tests (ASan+UBSan)"
	@echo "make test       deps, stack, unit and integration tests"
	@echo "make bench      benchmarks against the local stack"
	@echo "make bench BENCH=peers  omsd against Centrifugo under the same load (builds Centrifugo into .oms/bin)"
	@echo "make drills     failure drills on a 3-broker cluster of their own (tests/drills/)"
	@echo "make soak       the pipeline under steady load for SOAK_MINUTES (10): omsd RSS and fds"
	@echo "make fuzz       build the libFuzzer targets of tests/fuzz and run each FUZZ_SECONDS (60)"
	@echo "make fuzz-replay run the fuzz corpora and crash inputs as regression tests (ASan)"
	@echo "make clean      remove build outputs"

# ---- build -------------------------------------------------------------
$(BUILD)/gen/schemas_embed.c: $(SCHEMAS) scripts/embed-schemas.sh
	@mkdir -p $(@D)
	sh scripts/embed-schemas.sh $(SCHEMAS) > $@.tmp && mv $@.tmp $@
$(BUILD)/gen/migrations_embed.c: $(MIGRATIONS) scripts/embed-migrations.sh
	@mkdir -p $(@D)
	sh scripts/embed-migrations.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(OBJ)/%.o: %.c $(wildcard pkg/*/*.h)
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(BASEFLAGS) $(CFLAGS) -MMD -c $< -o $@
$(OBJ)/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(BASEFLAGS) $(CFLAGS) -c $< -o $@
$(SOBJ)/%.o: %.c $(wildcard pkg/*/*.h)
	@mkdir -p $(@D)
	@echo "  CC asan $<"
	@$(CC) $(BASEFLAGS) $(SANFLAGS) -MMD -c $< -o $@
$(SOBJ)/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(BASEFLAGS) $(SANFLAGS) -c $< -o $@

$(LIB): $(PKG_OBJS)
	@rm -f $@
	ar rcs $@ $^
$(SLIB): $(PKG_SOBJS)
	@rm -f $@
	ar rcs $@ $^

define prog_rules
$(BUILD)/bin/$(1): $(patsubst %.c,$(OBJ)/%.o,$(wildcard cmd/$(1)/*.c)) $(LIB)
	@mkdir -p $$(@D)
	@echo "  LINK    $$@"
	@$$(CC) $$(CFLAGS) -o $$@ $$^ $$(LDLIBS)
$(BUILD)/asan-bin/$(1): $(patsubst %.c,$(SOBJ)/%.o,$(wildcard cmd/$(1)/*.c)) $(SLIB)
	@mkdir -p $$(@D)
	@echo "  LINK    $$@"
	@$$(CC) $$(SANFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach p,$(PROGS),$(eval $(call prog_rules,$(p))))

$(BUILD)/tests/%: $(SOBJ)/tests/unit/%.o $(SLIB)
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS) -lcmocka
$(BUILD)/tests/tools/%: $(OBJ)/tests/tools/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
define tool_dir_rules
$(BUILD)/tests/tools/$(notdir $(1)): $(patsubst %.c,$(OBJ)/%.o,$(wildcard $(1)/*.c)) $(LIB)
	@mkdir -p $$(@D)
	@echo "  LINK    $$@"
	@$$(CC) $$(CFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach d,$(TOOL_DIRS),$(eval $(call tool_dir_rules,$(d))))

asan: $(ASAN_BINS)
tools: $(TOOL_BINS)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- fuzzing (tests/fuzz/README.md) -----------------------------------------
# build/fuzz/T: libFuzzer targets (clang); build/fuzz-replay/T: the same
# harness with a plain main() over the corpus and crash inputs (ASan+UBSan).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := ws_frame rest jwt avro socketio config wire
FUZZ_FLAGS   := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_HAVE_CC := $(shell command -v $(FUZZ_CC) 2>/dev/null)
FOBJ         := $(BUILD)/fuzz/obj
FLIB         := $(BUILD)/fuzz/liboms-fuzz.a
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)
FUZZ_REPLAY_BINS := $(FUZZ_TARGETS:%=$(BUILD)/fuzz-replay/%)
FUZZ_DEPS    := tests/fuzz/fuzz.h tests/fuzz/fuzz_tokens.c $(wildcard cmd/omsd/*.[ch])
FUZZ_INC     := -Itests/fuzz -Icmd/omsd

# pkg/ is held to -Werror by the main build already; clang's extra warnings
# must not stop the fuzz build
$(FOBJ)/%.o: %.c $(wildcard pkg/*/*.h)
	@mkdir -p $(@D)
	@echo "  CC fuzz $<"
	@$(FUZZ_CC) $(BASEFLAGS) -Wno-error $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FOBJ)/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	@$(FUZZ_CC) $(BASEFLAGS) -Wno-error $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FLIB): $(PKG_SRCS:%.c=$(FOBJ)/%.o) $(GEN_SRCS:$(BUILD)/%.c=$(FOBJ)/%.o)
	@rm -f $@
	@ar rcs $@ $^
$(FUZZ_BINS): $(BUILD)/fuzz/%: tests/fuzz/fuzz_%.c $(FUZZ_DEPS) $(FLIB)
	@mkdir -p $(@D)
	@echo "  LINK    $@"
	@$(FUZZ_CC) $(BASEFLAGS) $(FUZZ_INC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< \
		tests/fuzz/fuzz_tokens.c $(FLIB) $(LDLIBS)
$(FUZZ_REPLAY_BINS): $(BUILD)/fuzz-replay/%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(FUZZ_DEPS) $(SLIB)
	@mkdir -p $(@D)
	@echo "  LINK    $@"
	@$(CC) $(BASEFLAGS) $(FUZZ_INC) $(SANFLAGS) -o $@ $< tests/fuzz/replay.c \
		tests/fuzz/fuzz_tokens.c $(SLIB) $(LDLIBS)

fuzz-build: $(FUZZ_BINS)
# what make test needs: the replays always, the fuzzers when clang is there
fuzz-test-bins: $(FUZZ_REPLAY_BINS) $(if $(FUZZ_HAVE_CC),$(FUZZ_BINS))
fuzz-replay: $(FUZZ_REPLAY_BINS)
	@for t in $(FUZZ_TARGETS); do $(BUILD)/fuzz-replay/$$t tests/fuzz/corpus/$$t tests/fuzz/crashes/$$t || exit 1; done
fuzz: $(FUZZ_BINS)
	bash tests/fuzz/run.sh --seconds $(FUZZ_SECONDS) --merge $(FUZZ_TARGETS)

# ---- dependencies and the local stack ----------------------------------
deps:
	bash scripts/deps.sh

stack-up:
	bash scripts/stack.sh up

stack-down:
	bash scripts/stack.sh down

stack-env:
	@bash scripts/stack.sh env

# ---- run ----------------------------------------------------------------
demo: deps
	$(MAKE) all
	bash scripts/demo.sh

# ---- tests --------------------------------------------------------------
unit: $(UNIT_BINS)
	bash tests/run.sh --unit

integration: all $(ASAN_BINS) $(TOOL_BINS) fuzz-test-bins
	bash tests/run.sh --integration

# the registry too: the Confluent wire-format tests (0985) use it
test: deps
	$(MAKE) all asan tools $(UNIT_BINS) fuzz-test-bins
	REGISTRY=1 bash scripts/stack.sh up
	bash tests/run.sh --all

bench: deps
	$(MAKE) all tools
	REGISTRY=1 bash scripts/stack.sh up
	bash tests/bench/run.sh $(BENCH)

# failure drills (issue #9): their own 3-broker cluster and PostgreSQL
.PHONY: drills soak
drills: deps
	$(MAKE) all
	bash tests/drills/run.sh $(DRILLS)

SOAK_MINUTES ?= 10
soak: deps
	$(MAKE) all
	bash scripts/stack.sh up
	SOAK_MINUTES=$(SOAK_MINUTES) bash tests/soak/run.sh

clean:
	rm -rf $(BUILD)
