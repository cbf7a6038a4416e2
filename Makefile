# gsd — build everything into $(BUILD)/, test with `make check`.
#
#   make                   daemon, client library, gsctl, reference modules
#   make check             the whole test suite, then check-valgrind and fuzz
#   make check SANITIZE=1  the same under AddressSanitizer + UBSan, in build-san/
#   make check-valgrind    the end-to-end suites with the daemon under valgrind
#   make soak              mixed load for SOAK_SECONDS, then RSS and fds back to level
#   make stress            each attack on a fresh daemon: one table of RSS, ping, watchdog, losses
#   make fuzz              each libFuzzer target for FUZZ_SECONDS (default 60), in build-fuzz/
#   make deps              installs the Debian build dependencies (as root)
#   make install           into $(DESTDIR)$(PREFIX) (PREFIX=/usr/local); make uninstall
#   make bench             gsd vs Redis vs a raw echo server (docs/performance.md)
#   make bench-dist        gsd vs a BEAM node as GenServer.call's callee, and gsd to gsd calls

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
# The daemon is linked with link-time optimisation: a call's path crosses
# files in small functions (method, waiter, server, the protocol). The
# objects keep their ordinary code too (fat), for everything else. gcc
# only: clang's LTO needs a linker plugin Debian does not install with it.
LTO ?= $(if $(findstring clang,$(CC)),,-flto=auto -ffat-lto-objects)
endif

# Where `make install` puts things. The daemon's default module directory
# is compiled in from MODULEDIR.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MODULEDIR ?= $(LIBDIR)/gsd/modules
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/gsd
# gsctl's completion: where bash-completion's pkg-config file puts a
# package's completions, relative to PREFIX (bash-completion also looks
# under $XDG_DATA_DIRS, /usr/local/share included); without it, the same.
BASHCOMPDIR ?= $(or $(shell pkg-config --define-variable=prefix='$(PREFIX)' \
	--variable=completionsdir bash-completion 2>/dev/null),$(PREFIX)/share/bash-completion/completions)
VERSION := $(shell sed -n 's/^\#define GSD_VERSION "\(.*\)"/\1/p' daemon/gsd.h)

# DWARF 4: Debian's valgrind cannot read clang 14's default, DWARF 5.
OPT ?= -O2 -g $(if $(findstring clang,$(CC)),-gdwarf-4)
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC $(OPT) $(LTO) $(SANFLAGS) \
	-Iinclude -Iprotocol -Icommon -Iclient -Idaemon -DGSD_MODULE_DIR='"$(MODULEDIR)"' $(CFLAGS)
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)

PROTOCOL_SRC = $(wildcard protocol/*.c)
# Distribution (dist*.c) is linked into the daemon alone, with ei (Debian
# ships only a static libei, which needs -pthread); the core reaches it
# through dist_hooks, so everything else that links the daemon's objects
# does without it.
DIST_SRC = $(wildcard daemon/dist*.c)
DAEMON_SRC = $(filter-out $(DIST_SRC),$(wildcard daemon/*.c))
EI_LIB = $(firstword $(wildcard /usr/lib/erlang/lib/erl_interface-*/lib/libei.a) \
	$(wildcard /usr/lib/erlang/usr/lib/libei.a /usr/lib/libei.a))
EI_LIBS = $(EI_LIB) -pthread
CLIENT_SRC = client/gsclient.c client/gsmulti.c
GSCTL_SRC = client/gsctl.c client/top.c common/json.c
MODULES = $(patsubst modules/%.c,%,$(wildcard modules/*.c))
TEST_MODULES = $(patsubst tests/modules/%.c,%,$(wildcard tests/modules/*.c))
TESTS = $(patsubst tests/%.c,%,$(wildcard tests/check_*.c))
BENCH_MODULES = $(patsubst bench/modules/%.c,%,$(wildcard bench/modules/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
# ei's erl_errno is per thread only where its header sees _REENTRANT.
$(call obj,$(DIST_SRC)): CFLAGS_ALL += -pthread

all: $(BUILD)/gsd $(BUILD)/gsctl $(BUILD)/libgsclient.so $(BUILD)/libgsclient.a \
	$(MODULES:%=$(BUILD)/modules/%.so) $(BUILD)/modules/upgrade/counter.so \
	$(BUILD)/gsd-module.pc $(BUILD)/gsclient.pc $(BUILD)/gsbench $(BUILD)/echo \
	$(BENCH_MODULES:%=$(BUILD)/bench-modules/%.so) $(BUILD)/libgsdtest.a $(BUILD)/gsd-test.pc

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

# The install paths built into main.c and the .pc files: they are rebuilt
# when one changes.
PATHS = $(PREFIX) $(INCLUDEDIR) $(LIBDIR) $(MODULEDIR)
$(BUILD)/paths: FORCE
	@mkdir -p $(dir $@)
	@echo '$(PATHS)' | cmp -s - $@ || echo '$(PATHS)' > $@
$(call obj,daemon/main.c): $(BUILD)/paths

$(BUILD)/%.pc: pkgconfig/%.pc.in $(BUILD)/paths daemon/gsd.h
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|; s|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@MODULEDIR@|$(MODULEDIR)|; s|@VERSION@|$(VERSION)|' $< > $@

# The daemon reads JSON args in its configuration with the converter it
# shares with gsctl (common/json.c).
$(BUILD)/gsd: $(call obj,$(DAEMON_SRC) $(DIST_SRC) $(PROTOCOL_SRC) common/json.c)
	@test -n "$(EI_LIB)" || { echo "no libei.a: install erlang-dev (scripts/deps.sh)" >&2; exit 1; }
	$(CC) $(LDFLAGS_ALL) $(OPT) $(LTO) -o $@ $^ -levent -lmsgpackc -ldl -lconfig -ljansson \
		$(EI_LIBS)

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

# A module is built exactly as a module author builds one. gsd refuses a
# module file others may write to, whatever the umask.
$(BUILD)/modules/%.so: modules/%.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $<
	chmod go-w $@

$(BUILD)/test-modules/%.so: tests/modules/%.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $<
	chmod go-w $@

# Version 2 of the counter, the worked example of a hot upgrade.
$(BUILD)/modules/upgrade/counter.so: modules/counter.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DCOUNTER_VSN=2 -shared -o $@ $<
	chmod go-w $@

# Other versions of a test module, for the upgrade tests.
UPGRADE_TEST_MODULES = $(BUILD)/test-modules/v2/versioned.so $(BUILD)/test-modules/badabi/versioned.so \
	$(BUILD)/test-modules/v3/versioned.so $(BUILD)/test-modules/v3bare/versioned.so
$(BUILD)/test-modules/v2/versioned.so: tests/modules/versioned.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DVSN=2 -shared -o $@ $<
	chmod go-w $@
$(BUILD)/test-modules/v3/versioned.so: tests/modules/versioned.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DVSN=3 -DNO_CODE_CHANGE -DSTATE_VSN=2 -shared -o $@ $<
	chmod go-w $@
$(BUILD)/test-modules/v3bare/versioned.so: tests/modules/versioned.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DVSN=3 -DNO_CODE_CHANGE -shared -o $@ $<
	chmod go-w $@
$(BUILD)/test-modules/badabi/versioned.so: tests/modules/versioned.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DBAD_ABI -shared -o $@ $<
	chmod go-w $@

# ---- the test harness for module authors (include/gsd/test.h) ------------
# The daemon's objects (all but main.c) and testkit/, as one relocatable
# object whose only global symbols are gst_* and clock_gettime (the virtual
# clock): a test program's own names cannot clash with the daemon's.
GSDTEST_OBJS = $(call obj,$(wildcard testkit/*.c) $(filter-out daemon/main.c,$(DAEMON_SRC)) \
	$(PROTOCOL_SRC) common/json.c)
GSDTEST_LIBS = -levent -lmsgpackc -ljansson -lconfig -ldl
$(BUILD)/libgsdtest.a: $(GSDTEST_OBJS)
	@rm -f $@ $(BUILD)/gsdtest.o
	$(LD) -r -o $(BUILD)/gsdtest.o $^
	objcopy --wildcard --keep-global-symbol='gst_*' --keep-global-symbol=clock_gettime \
		-R '.gnu.lto_*' -R '.gnu.debuglto_*' $(BUILD)/gsdtest.o
	ar rcs $@ $(BUILD)/gsdtest.o

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

bench-dist: all
	sh bench/dist.sh $(BUILD)

# ---- tests --------------------------------------------------------------
CHECK_LIBS = $(shell pkg-config --libs check)
TEST_SUPPORT = $(call obj,tests/harness.c)

$(BUILD)/tests/%: $(call obj,tests/%.c) $(TEST_SUPPORT) $(BUILD)/libgsclient.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) -lmsgpackc

# The client suite drives libgsclient from a libevent loop too.
$(BUILD)/tests/check_client: $(call obj,tests/check_client.c) $(TEST_SUPPORT) $(BUILD)/libgsclient.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) -levent -lmsgpackc

# The harness's own suite and the reference modules' unit tests: built as
# an author builds a module's tests, against libgsdtest alone.
GSDTEST_TESTS = check_gsdtest check_modules_unit
$(GSDTEST_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(call obj,tests/%.c) $(BUILD)/libgsdtest.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(GSDTEST_LIBS)

# The end-to-end suites share their fixture and helpers (tests/e2e.c).
E2E_TESTS = $(filter check_e2e_%,$(TESTS))
$(E2E_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(call obj,tests/%.c tests/e2e.c) $(TEST_SUPPORT) \
		$(BUILD)/libgsclient.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) -lmsgpackc

# These link the daemon's objects directly (all but main.c).
IN_PROCESS_TESTS = check_units check_limits
$(IN_PROCESS_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(call obj,tests/%.c) \
		$(call obj,$(filter-out daemon/main.c,$(DAEMON_SRC)) common/json.c) $(BUILD)/libgsclient.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) -levent -lmsgpackc -ldl -lconfig -ljansson

# The plain check also runs the end-to-end suites under valgrind and each
# fuzz target for FUZZ_SECONDS (`make check FUZZ_SECONDS=5` for a quick one).
# The Python package is tested as installed: `pip install` (offline, with
# Debian's msgpack and setuptools through --system-site-packages) of a copy
# of client/python (so that no build output lands in the source tree) into
# a fresh $(BUILD)/venv, its tests run from outside the source tree so that
# they import the installed package, and the venv removed after. In the
# plain build only.
PYTHON ?= /usr/bin/python3
ifeq ($(SANITIZE),1)
PYTHON_CHECK = true
else
PYTHON_CHECK = echo "== python client/python, installed in $(BUILD)/venv"; \
	rm -rf $(BUILD)/venv; \
	{ $(PYTHON) -m venv --system-site-packages $(BUILD)/venv && \
	  cp -R client/python $(BUILD)/venv/gsd-src && \
	  rm -rf $(BUILD)/venv/gsd-src/build $(BUILD)/venv/gsd-src/gsd.egg-info && \
	  $(BUILD)/venv/bin/pip install -q --no-build-isolation --no-index $(BUILD)/venv/gsd-src && \
	  (cd $(BUILD)/venv && GSD_PY_INSTALLED=1 PYTHONDONTWRITEBYTECODE=1 timeout 600 \
	     bin/python -m unittest discover -s $(CURDIR)/client/python/tests); } || rc=1; \
	rm -rf $(BUILD)/venv
endif

# The module author's tests (below): named before check, which needs them.
AUTHOR_TESTS = $(BUILD)/examples/counter_test $(BUILD)/examples/ratelimit/ratelimit_test
check: all $(TEST_MODULES:%=$(BUILD)/test-modules/%.so) $(UPGRADE_TEST_MODULES) \
		$(TESTS:%=$(BUILD)/tests/%) $(BUILD)/examples/async-counter $(AUTHOR_TESTS)
	@export GSD_BUILD=$(abspath $(BUILD)) GSD_SOURCE=$(CURDIR); rc=0; \
	for t in $(TESTS); do echo "== $$t"; $(BUILD)/tests/$$t || rc=1; done; \
	for t in $(E2E_TESTS) check_upgrade; do echo "== $$t, every server isolated"; \
		GSD_TEST_ISOLATE=1 $(BUILD)/tests/$$t || rc=1; done; \
	$(AUTHOR_CHECK); \
	$(PYTHON_CHECK); \
	echo "== check_install"; BUILD=$(BUILD) SANITIZE=$(SANITIZE) MAKE="$(MAKE)" \
		timeout 300 sh tests/check_install.sh || rc=1; exit $$rc
ifneq ($(SANITIZE),1)
	@echo "== check_e2e_* and check_upgrade under valgrind"
	$(MAKE) --no-print-directory check-valgrind
	$(MAKE) --no-print-directory fuzz
endif

# The C example of docs/scripting.md, cut out of the page and built, so the
# page cannot drift from the library (check_client runs it).
$(BUILD)/examples/async-counter: docs/scripting.md $(BUILD)/libgsclient.a
	@mkdir -p $(dir $@)
	sed -n '/^<!-- example: async-counter.c -->/,/^```$$/p' $< | sed '1,2d;$$d' > $@.c
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $@.c $(BUILD)/libgsclient.a -levent -lmsgpackc

# What a module author builds, against the installed-style headers and
# libgsdtest alone, run by make check: the counter's test that
# docs/modules.md shows (cut out of the page, so it cannot drift), and the
# rate limiter exercise of examples/ratelimit (version 1, version 2 to
# upgrade to, and its tests).
AUTHOR_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -O2 -g $(SANFLAGS) -Iinclude
$(BUILD)/examples/counter_test: docs/modules.md $(BUILD)/libgsdtest.a
	@mkdir -p $(dir $@)
	sed -n '/^<!-- example: counter_test.c -->/,/^```$$/p' $< | sed '1,2d;$$d' > $@.c
	$(CC) $(AUTHOR_CFLAGS) $(LDFLAGS_ALL) -o $@ $@.c $(BUILD)/libgsdtest.a $(CHECK_LIBS) $(GSDTEST_LIBS)
$(BUILD)/examples/ratelimit/ratelimit.so: examples/ratelimit/ratelimit.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(AUTHOR_CFLAGS) -shared -o $@ $<
	chmod go-w $@
$(BUILD)/examples/ratelimit/v2/ratelimit.so: examples/ratelimit/ratelimit.c include/gsd/module.h
	@mkdir -p $(dir $@)
	$(CC) $(AUTHOR_CFLAGS) -DRATELIMIT_V2 -shared -o $@ $<
	chmod go-w $@
$(BUILD)/examples/ratelimit/ratelimit_test: examples/ratelimit/ratelimit_test.c \
		$(BUILD)/libgsdtest.a $(BUILD)/examples/ratelimit/ratelimit.so \
		$(BUILD)/examples/ratelimit/v2/ratelimit.so
	$(CC) $(AUTHOR_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libgsdtest.a $(CHECK_LIBS) $(GSDTEST_LIBS)
AUTHOR_CHECK = echo "== the module author's tests: docs/modules.md's counter_test, examples/ratelimit"; \
	GSD_TEST_MODULES=$(BUILD)/modules $(BUILD)/examples/counter_test || rc=1; \
	GSD_TEST_MODULES=$(BUILD)/examples/ratelimit \
	RATELIMIT_V2=$(BUILD)/examples/ratelimit/v2/ratelimit.so \
	$(BUILD)/examples/ratelimit/ratelimit_test || rc=1

# The end-to-end suites with the daemon under valgrind: any error or leak
# makes its exit status, and so the test, fail.
VALGRIND = valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99
VALGRIND_SUITES = $(E2E_TESTS) check_upgrade check_dist
check-valgrind: all $(TEST_MODULES:%=$(BUILD)/test-modules/%.so) $(UPGRADE_TEST_MODULES) \
		$(VALGRIND_SUITES:%=$(BUILD)/tests/%)
	for t in $(VALGRIND_SUITES); do \
		GSD_BUILD=$(abspath $(BUILD)) GSD_SOURCE=$(CURDIR) GSD_TEST_WRAP="$(VALGRIND)" \
			$(BUILD)/tests/$$t || exit 1; \
	done

# ---- fuzzing ------------------------------------------------------------
# fuzz_frame: the protocol decoder; fuzz_request: bytes in, responses out,
# through the daemon's dispatch and the reference modules (all but probe,
# which writes files it is told to). Seeds are in fuzz/corpus/TARGET; what
# a run finds goes to $(BUILD)/corpus/TARGET, crashes to $(BUILD)/crash-*.
FUZZ_TARGETS = fuzz_frame fuzz_request fuzz_dist
FUZZ_SECONDS ?= 60
FUZZ_MODULES = $(filter-out probe,$(MODULES))

$(BUILD)/fuzz/fuzz_frame: $(call obj,fuzz/fuzz_frame.c $(PROTOCOL_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ -lmsgpackc

$(BUILD)/fuzz/fuzz_dist: $(call obj,fuzz/fuzz_dist.c daemon/dist_term.c $(PROTOCOL_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ -lmsgpackc

$(BUILD)/fuzz/fuzz_request: $(call obj,fuzz/fuzz_request.c \
		$(filter-out daemon/main.c,$(DAEMON_SRC)) $(PROTOCOL_SRC) common/json.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ -levent -lmsgpackc -ldl -lconfig -ljansson

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

# Each attack of docs/limits.md's "make stress" against a fresh daemon, one
# table (STRESS_SCALE, STRESS_ONLY, STRESS_NO_BUDGET). Not part of check.
stress: all $(TEST_MODULES:%=$(BUILD)/test-modules/%.so) $(BUILD)/tests/stress
	GSD_BUILD=$(abspath $(BUILD)) $(BUILD)/tests/stress

deps:
	sh scripts/deps.sh

# ---- install ------------------------------------------------------------
# Paths inside the units and man pages are those of PREFIX=/usr/local:
# rewritten here for another PREFIX (a man page writes bash\-completion).
REPREFIX = sed 's|/usr/local/bin/|$(BINDIR)/|g; s|/usr/local/lib/gsd/modules|$(MODULEDIR)|g; \
	s|/usr/local/share/doc/gsd|$(DOCDIR)|g; \
	s|/usr/local/share/bash\(\\\)\{0,1\}-completion/completions|$(BASHCOMPDIR)|g; \
	s|/usr/local|$(PREFIX)|g'
MANPAGES = man8/gsd.8 man1/gsctl.1 man3/gsd-module.3 man5/gsd.conf.5
DOCS = $(wildcard docs/*.md)
# The reference modules' sources, which docs/modules.md starts authors from.
EXAMPLEDIR = $(DOCDIR)/examples/modules
INSTALLED = $(BINDIR)/gsd $(BINDIR)/gsctl $(INCLUDEDIR)/gsclient.h $(INCLUDEDIR)/gsclient-event.h \
	$(INCLUDEDIR)/gsd/module.h $(INCLUDEDIR)/gsd/test.h $(LIBDIR)/libgsdtest.a $(PKGCONFIGDIR)/gsd-test.pc \
	$(LIBDIR)/libgsclient.a $(LIBDIR)/libgsclient.so $(LIBDIR)/libgsclient.so.1 \
	$(LIBDIR)/libgsclient.so.1.0.0 $(PKGCONFIGDIR)/gsd-module.pc $(PKGCONFIGDIR)/gsclient.pc \
	$(MODULES:%=$(MODULEDIR)/%.so) $(UNITDIR)/gsd.service $(UNITDIR)/gsd.socket \
	$(SYSUSERSDIR)/gsd.conf $(MANPAGES:%=$(MANDIR)/%) $(BASHCOMPDIR)/gsctl \
	$(DOCDIR)/gsd.conf.example $(DOCS:docs/%=$(DOCDIR)/%) $(MODULES:%=$(EXAMPLEDIR)/%.c)
# The directories install puts files in. Those that did not exist yet (with
# their parents) are listed in DIRLOG, and uninstall removes exactly those,
# each once it is empty: never a directory that was there before.
INSTALL_DIRS = $(BINDIR) $(LIBDIR) $(INCLUDEDIR)/gsd $(MODULEDIR) $(PKGCONFIGDIR) $(UNITDIR) \
	$(SYSUSERSDIR) $(addprefix $(MANDIR)/,$(sort $(patsubst %/,%,$(dir $(MANPAGES))))) $(DOCDIR) \
	$(EXAMPLEDIR) $(BASHCOMPDIR)
DIRLOG = $(DOCDIR)/installed-dirs
# Shows a command run inside a silent (@) recipe line, unless make -s.
SAY = $(if $(findstring s,$(firstword -$(MAKEFLAGS))),:,echo)

install: all
	@new=$$(for d in $(INSTALL_DIRS); do \
		while [ "$$d" != / ] && [ "$$d" != . ] && [ ! -d "$(DESTDIR)$$d" ]; do \
			echo "$$d"; d=$$(dirname "$$d"); done; done); \
	$(SAY) install -d $(addprefix $(DESTDIR),$(INSTALL_DIRS)); \
	install -d $(addprefix $(DESTDIR),$(INSTALL_DIRS)) && \
	{ cat "$(DESTDIR)$(DIRLOG)" 2>/dev/null; [ -z "$$new" ] || echo "$$new"; } | LC_ALL=C sort -u \
		> "$(DESTDIR)$(DIRLOG).new" && mv -f "$(DESTDIR)$(DIRLOG).new" "$(DESTDIR)$(DIRLOG)" && \
	chmod 644 "$(DESTDIR)$(DIRLOG)"
	install -m 755 $(BUILD)/gsd $(BUILD)/gsctl $(DESTDIR)$(BINDIR)/
	install -m 644 client/gsclient.h client/gsclient-event.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 include/gsd/module.h include/gsd/test.h $(DESTDIR)$(INCLUDEDIR)/gsd/
	install -m 644 $(BUILD)/libgsclient.a $(BUILD)/libgsdtest.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libgsclient.so.1 $(DESTDIR)$(LIBDIR)/libgsclient.so.1.0.0
	ln -sf libgsclient.so.1.0.0 $(DESTDIR)$(LIBDIR)/libgsclient.so.1
	ln -sf libgsclient.so.1 $(DESTDIR)$(LIBDIR)/libgsclient.so
	install -m 644 $(BUILD)/gsd-module.pc $(BUILD)/gsclient.pc $(BUILD)/gsd-test.pc $(DESTDIR)$(PKGCONFIGDIR)/
	install -m 644 $(MODULES:%=$(BUILD)/modules/%.so) $(DESTDIR)$(MODULEDIR)/
	for f in gsd.service gsd.socket; do \
		$(REPREFIX) systemd/$$f > $(DESTDIR)$(UNITDIR)/$$f && chmod 644 $(DESTDIR)$(UNITDIR)/$$f; done
	install -m 644 systemd/gsd.sysusers $(DESTDIR)$(SYSUSERSDIR)/gsd.conf
	install -m 644 client/gsctl.bash $(DESTDIR)$(BASHCOMPDIR)/gsctl
	$(REPREFIX) etc/gsd.conf > $(DESTDIR)$(DOCDIR)/gsd.conf.example
	install -m 644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	install -m 644 $(MODULES:%=modules/%.c) $(DESTDIR)$(EXAMPLEDIR)/
	for m in $(MANPAGES); do \
		$(REPREFIX) docs/man/$${m#*/} > $(DESTDIR)$(MANDIR)/$$m && chmod 644 $(DESTDIR)$(MANDIR)/$$m; done
	@[ -n "$(DESTDIR)" ] || [ "$$(id -u)" -ne 0 ] || { $(SAY) ldconfig; ldconfig; }

# The directories: those install created (DIRLOG) and gsd's own, deepest
# first, each only if nothing else is in it.
uninstall:
	@dirs=$$({ cat "$(DESTDIR)$(DIRLOG)" 2>/dev/null; for d in $(MODULEDIR) $(LIBDIR)/gsd \
		$(INCLUDEDIR)/gsd $(EXAMPLEDIR) $(DOCDIR)/examples $(DOCDIR); do echo "$$d"; done; } | \
		LC_ALL=C sort -ru); \
	$(SAY) rm -f $(addprefix $(DESTDIR),$(INSTALLED) $(DIRLOG)); \
	rm -f $(addprefix $(DESTDIR),$(INSTALLED) $(DIRLOG)) || exit 1; \
	for d in $$dirs; do \
		[ ! -d "$(DESTDIR)$$d" ] || rmdir "$(DESTDIR)$$d" 2>/dev/null || true; done
	@[ -n "$(DESTDIR)" ] || [ "$$(id -u)" -ne 0 ] || { $(SAY) ldconfig; ldconfig; }

clean:
	rm -rf build build-san build-fuzz

.PHONY: all check check-valgrind fuzz fuzz-run soak stress deps install uninstall clean bench bench-dist FORCE
.SECONDARY:
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
