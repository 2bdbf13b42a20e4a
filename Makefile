# oms — build, local stack, tests and benchmarks. `make help` lists the targets.
CC      ?= cc
PKGS    := rdkafka avro-c libwebsockets jansson libjwt libpq yaml-0.1 libcurl
STATE   ?= $(CURDIR)/.oms
export OMS_STATE ?= $(STATE)
BUILD   := build

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASEFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -Ipkg -I$(BUILD)/gen $(PKG_CFLAGS)
CFLAGS   ?= -O2 -g
SANFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDLIBS   := $(PKG_LIBS) -lcrypto -lpthread -lm

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
TOOL_SRCS := $(sort $(wildcard tests/tools/*.c))
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tests/tools/%)

.PHONY: all deps stack-up stack-down stack-env demo unit test integration bench clean help asan tools check-deps

all: $(BINS)

help:
	@echo "make            build build/bin/omsd, omsctl, oms-producer"
	@echo "make deps       install missing Debian packages and the Kafka jars (idempotent)"
	@echo "make stack-up   start Kafka (KRaft) and PostgreSQL on loopback (idempotent)"
	@echo "make stack-down stop what stack-up started"
	@echo "make stack-env  print export lines for the running stack"
	@echo "make demo       the whole pipeline locally"
	@echo "make unit       unit tests (ASan+UBSan)"
	@echo "make test       deps, stack, unit and integration tests"
	@echo "make bench      benchmarks against the local stack"
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

asan: $(ASAN_BINS)
tools: $(TOOL_BINS)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

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

integration: all $(ASAN_BINS) $(TOOL_BINS)
	bash tests/run.sh --integration

test: deps
	$(MAKE) all asan tools $(UNIT_BINS)
	bash scripts/stack.sh up
	bash tests/run.sh --all

bench: deps
	$(MAKE) all tools
	bash scripts/stack.sh up
	bash tests/bench/run.sh $(BENCH)

clean:
	rm -rf $(BUILD)
