# gsd — build everything into $(BUILD)/, test with `make check`.
#
#   make                   daemon, client library, gsctl, reference modules
#   make check             the whole test suite, then check-valgrind and fuzz
#   make check SANITIZE=1  the same under AddressSanitizer + UBSan, in build-san/
#   make check-valgrind    the end-to-end suite with the daemon under valgrind
#   make soak              mixed load for SOAK_SECONDS, then RSS and fds back to level
#   make fuzz              each libFuzzer target for FUZZ_SECONDS (default 60), in build-fuzz/
#   make deps              installs the Debian build dependencies (as root)

CC ?= cc
SANITIZE ?=
ifeq ($(FUZZ),1)
# libFuzzer targets: clang, every object instrumented, in build-fuzz/.
BUILD ?= build-fuzz
CC = clang
SANFLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined
else ifeq ($(SANITIZE),1)
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

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

all: $(BUILD)/gsd $(BUILD)/gsctl $(BUILD)/libgsclient.so $(BUILD)/libgsclient.a \
	$(MODULES:%=$(BUILD)/modules/%.so)

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

# ---- tests --------------------------------------------------------------
CHECK_LIBS = $(shell pkg-config --libs check)
TEST_SUPPORT = $(call obj,tests/harness.c)

$(BUILD)/tests/%: $(call obj,tests/%.c) $(TEST_SUPPORT) $(BUILD)/libgsclient.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) -lmsgpackc

# These link the daemon's objects directly (all but main.c).
IN_PROCESS_TESTS = check_units check_limits
$(IN_PROCESS_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(call obj,tests/%.c) \
		$(call obj,$(filter-out daemon/main.c,$(DAEMON_SRC))) $(BUILD)/libgsclient.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) -levent -lmsgpackc -ldl

# The plain check also runs the end-to-end suite under valgrind and each
# fuzz target for FUZZ_SECONDS (`make check FUZZ_SECONDS=5` for a quick one).
check: all $(TEST_MODULES:%=$(BUILD)/test-modules/%.so) $(TESTS:%=$(BUILD)/tests/%)
	@export GSD_BUILD=$(abspath $(BUILD)); rc=0; \
	for t in $(TESTS); do echo "== $$t"; $(BUILD)/tests/$$t || rc=1; done; exit $$rc
ifneq ($(SANITIZE),1)
	@echo "== check_e2e under valgrind"
	$(MAKE) --no-print-directory check-valgrind
	$(MAKE) --no-print-directory fuzz
endif

# The end-to-end suite with the daemon under valgrind: any error or leak
# makes its exit status, and so the test, fail.
VALGRIND = valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99
check-valgrind: all $(TEST_MODULES:%=$(BUILD)/test-modules/%.so) $(BUILD)/tests/check_e2e
	GSD_BUILD=$(abspath $(BUILD)) GSD_TEST_WRAP="$(VALGRIND)" $(BUILD)/tests/check_e2e

# ---- fuzzing ------------------------------------------------------------
# fuzz_frame: the protocol decoder; fuzz_request: bytes in, responses out,
# through the daemon's dispatch and the reference modules (all but probe,
# which writes files it is told to). Seeds are in fuzz/corpus/TARGET; what
# a run finds goes to $(BUILD)/corpus/TARGET, crashes to $(BUILD)/crash-*.
FUZZ_TARGETS = fuzz_frame fuzz_request
FUZZ_SECONDS ?= 60
FUZZ_MODULES = $(filter-out probe,$(MODULES))

$(BUILD)/fuzz/fuzz_frame: $(call obj,fuzz/fuzz_frame.c $(PROTOCOL_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ -lmsgpackc

$(BUILD)/fuzz/fuzz_request: $(call obj,fuzz/fuzz_request.c \
		$(filter-out daemon/main.c,$(DAEMON_SRC)) $(PROTOCOL_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ -levent -lmsgpackc -ldl

# The modules it loads: built as an author would, with the sanitizers only.
$(BUILD)/fuzz-modules/%.so: modules/%.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -O1 -g -fsanitize=address,undefined \
		-Iinclude -shared -o $@ $<

fuzz-run: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%) $(FUZZ_MODULES:%=$(BUILD)/fuzz-modules/%.so)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p $(BUILD)/corpus/$$t || exit 1; \
		echo "== $$t for $(FUZZ_SECONDS) s"; \
		FUZZ_MODULES=$(abspath $(BUILD))/fuzz-modules $(BUILD)/fuzz/$$t \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 \
			-print_final_stats=1 -artifact_prefix=$(BUILD)/ \
			$(BUILD)/corpus/$$t fuzz/corpus/$$t 2>$(BUILD)/$$t.log; rc=$$?; \
		grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^(==|SUMMARY|Done)' \
			$(BUILD)/$$t.log; \
		[ $$rc -eq 0 ] || { tail -40 $(BUILD)/$$t.log; exit 1; }; \
	done

fuzz:
	$(MAKE) FUZZ=1 fuzz-run

# Mixed load for SOAK_SECONDS (default 60); the daemon's RSS and fds must
# come back to their level. Not part of check.
soak: all $(TEST_MODULES:%=$(BUILD)/test-modules/%.so) $(BUILD)/tests/soak
	GSD_BUILD=$(abspath $(BUILD)) $(BUILD)/tests/soak

deps:
	sh scripts/deps.sh

clean:
	rm -rf build build-san build-fuzz

.PHONY: all check check-valgrind fuzz fuzz-run soak deps clean
.SECONDARY:
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
