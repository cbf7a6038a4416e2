# gsd — build everything into $(BUILD)/, test with `make check`.
#
#   make                   daemon, client library, gsctl, reference modules
#   make check             the whole test suite
#   make check SANITIZE=1  the same under AddressSanitizer + UBSan, in build-san/
#   make check-valgrind    the end-to-end suite with the daemon under valgrind
#   make deps              installs the Debian build dependencies (as root)
#   make bench             gsd vs Redis vs a raw echo server (docs/performance.md)

CC ?= cc
SANITIZE ?=
ifeq ($(SANITIZE),1)
BUILD ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD ?= build
SANFLAGS =
endif

OPT ?= -O2 -g
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC $(OPT) $(SANFLAGS) \
	-Iinclude -Iprotocol -Iclient -Idaemon $(CFLAGS)
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)

PROTOCOL_SRC = $(wildcard protocol/*.c)
DAEMON_SRC = $(wildcard daemon/*.c)
CLIENT_SRC = client/gsclient.c
GSCTL_SRC = client/gsctl.c client/json.c
MODULES = $(patsubst modules/%.c,%,$(wildcard modules/*.c))
TEST_MODULES = $(patsubst tests/modules/%.c,%,$(wildcard tests/modules/*.c))
TESTS = $(patsubst tests/%.c,%,$(wildcard tests/check_*.c))
BENCH_MODULES = $(patsubst bench/modules/%.c,%,$(wildcard bench/modules/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

all: $(BUILD)/gsd $(BUILD)/gsctl $(BUILD)/libgsclient.so $(BUILD)/libgsclient.a \
	$(MODULES:%=$(BUILD)/modules/%.so) $(BUILD)/gsbench $(BUILD)/echo \
	$(BENCH_MODULES:%=$(BUILD)/bench-modules/%.so)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

$(BUILD)/gsd: $(call obj,$(DAEMON_SRC) $(PROTOCOL_SRC))
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -levent -lmsgpackc -ldl

$(BUILD)/libgsclient.a: $(call obj,$(CLIENT_SRC) $(PROTOCOL_SRC))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libgsclient.so.1: $(call obj,$(CLIENT_SRC) $(PROTOCOL_SRC)) client/libgsclient.map
	$(CC) $(LDFLAGS_ALL) -shared -Wl,-soname,libgsclient.so.1 \
		-Wl,--version-script=client/libgsclient.map -o $@ $(filter %.o,$^) -lmsgpackc

$(BUILD)/libgsclient.so: $(BUILD)/libgsclient.so.1
	ln -sf libgsclient.so.1 $@

$(BUILD)/gsctl: $(call obj,$(GSCTL_SRC)) $(BUILD)/libgsclient.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -lmsgpackc -ljansson

# A module is built exactly as a module author builds one.
$(BUILD)/modules/%.so: modules/%.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $<

$(BUILD)/test-modules/%.so: tests/modules/%.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $<

# ---- benchmarks -----------------------------------------------------------
$(BUILD)/gsbench: $(call obj,bench/gsbench.c protocol/frame.c protocol/envelope.c protocol/names.c)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -lmsgpackc

$(BUILD)/echo: $(call obj,bench/echo.c)
	$(CC) $(LDFLAGS_ALL) -o $@ $^

$(BUILD)/bench-modules/%.so: bench/modules/%.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $<

bench: all
	sh bench/run.sh $(BUILD)

# ---- tests --------------------------------------------------------------
CHECK_LIBS = $(shell pkg-config --libs check)
TEST_SUPPORT = $(call obj,tests/harness.c)

$(BUILD)/tests/%: $(call obj,tests/%.c) $(TEST_SUPPORT) $(BUILD)/libgsclient.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) -lmsgpackc

# The unit tests link the daemon's objects directly (all but main.c).
$(BUILD)/tests/check_units: $(call obj,tests/check_units.c) \
		$(call obj,$(filter-out daemon/main.c,$(DAEMON_SRC))) $(BUILD)/libgsclient.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) -levent -lmsgpackc -ldl

check: all $(TEST_MODULES:%=$(BUILD)/test-modules/%.so) $(TESTS:%=$(BUILD)/tests/%)
	@export GSD_BUILD=$(abspath $(BUILD)); rc=0; \
	for t in $(TESTS); do echo "== $$t"; $(BUILD)/tests/$$t || rc=1; done; exit $$rc

# The end-to-end suite with the daemon under valgrind: any error or leak
# makes its exit status, and so the test, fail.
VALGRIND = valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99
check-valgrind: all $(TEST_MODULES:%=$(BUILD)/test-modules/%.so) $(BUILD)/tests/check_e2e
	GSD_BUILD=$(abspath $(BUILD)) GSD_TEST_WRAP="$(VALGRIND)" $(BUILD)/tests/check_e2e

deps:
	sh scripts/deps.sh

clean:
	rm -rf build build-san

.PHONY: all check check-valgrind deps clean bench
.SECONDARY:
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
