#!/bin/sh
# check_install.sh — `make install` into a temporary DESTDIR, then, with
# nothing from the source tree: a module built with pkg-config alone, run
# by the installed gsd and called by the installed gsctl and by clients
# linked against the installed libgsclient (shared and static, and one in a
# libevent loop through gsclient-event.h); every reference module's
# installed source builds; the bash completion completes; the docs are
# there; the man pages render without a warning and name every flag,
# command and configuration key. Then `make uninstall` leaves neither a
# file nor a directory that install created (and keeps one it did not).
#
#   sh tests/check_install.sh        (make check runs it with its BUILD)
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
SANITIZE=${SANITIZE:-}
CC=${CC:-cc}
prefix=/usr/local
tmp=$(mktemp -d /tmp/gsd-install-XXXXXX)
dest=$tmp/root
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() {
    echo "check_install: FAIL: $*" >&2
    if [ -s "$tmp/gsd.log" ]; then
        echo "--- gsd's log:" >&2
        cat "$tmp/gsd.log" >&2
    fi
    exit 1
}

# A directory that is there before install (empty, as a fresh system's
# share/man may be): uninstall must leave it, and its parents.
mkdir -p "$dest$prefix/share/man"
before=$(cd "$dest" && find . -mindepth 1 | sort)
# ldconfig is run only by a root install into the real root: a stand-in
# records any call.
mkdir "$tmp/bin"
printf '#!/bin/sh\necho "$*" >>"%s"\n' "$tmp/ldconfig.log" >"$tmp/bin/ldconfig"
chmod +x "$tmp/bin/ldconfig"

cd "$src"
# Twice: the second install must not forget which directories the first made.
for i in 1 2; do
    PATH="$tmp/bin:$PATH" ${MAKE:-make} -s install DESTDIR="$dest" BUILD="$BUILD" \
        SANITIZE="$SANITIZE" >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log" >&2; fail "make install"; }
done
[ ! -e "$tmp/ldconfig.log" ] || fail "make install DESTDIR=... ran ldconfig"
# Where bash-completion wants completions under PREFIX, as the Makefile asks.
compdir=$(pkg-config --define-variable=prefix="$prefix" --variable=completionsdir \
    bash-completion 2>/dev/null) || compdir=
[ -n "$compdir" ] || compdir=$prefix/share/bash-completion/completions
for f in bin/gsd bin/gsctl include/gsclient.h include/gsclient-event.h include/gsd/module.h \
    lib/libgsclient.a lib/libgsclient.so lib/libgsclient.so.1 lib/pkgconfig/gsd-module.pc \
    lib/pkgconfig/gsclient.pc lib/gsd/modules/counter.so lib/systemd/system/gsd.service \
    lib/systemd/system/gsd.socket lib/sysusers.d/gsd.conf share/man/man8/gsd.8 \
    share/man/man1/gsctl.1 share/man/man3/gsd-module.3 share/man/man5/gsd.conf.5 \
    share/doc/gsd/gsd.conf.example; do
    [ -e "$dest$prefix/$f" ] || fail "$prefix/$f was not installed"
done
# Installed as they are in the tree: headers, completion, docs, module sources.
same() { cmp -s "$1" "$dest$2" || fail "$2 was not installed, or differs from $1"; }
same client/gsclient-event.h "$prefix/include/gsclient-event.h"
same client/gsctl.bash "$compdir/gsctl"
for f in docs/*.md; do same "$f" "$prefix/share/doc/gsd/${f#docs/}"; done
for f in modules/*.c; do same "$f" "$prefix/share/doc/gsd/examples/modules/${f#modules/}"; done
"$dest$prefix/bin/gsd" -h | grep -q "$prefix/lib/gsd/modules" ||
    fail "the installed gsd's default module directory is not $prefix/lib/gsd/modules"

# The man pages render without a warning, and say what the programs do:
# every flag of gsd -h, every command and option of gsctl, every key the
# configuration reader knows.
man="$dest$prefix/share/man"
if command -v groff >/dev/null 2>&1; then
    for m in man1/gsctl.1 man3/gsd-module.3 man5/gsd.conf.5 man8/gsd.8; do
        w=$(groff -man -ww -z "$man/$m" 2>&1) || fail "groff $m failed: $w"
        [ -z "$w" ] || fail "$m: groff warns: $w"
        if command -v man >/dev/null 2>&1; then
            w=$(MANWIDTH=80 man -l "$man/$m" 2>&1 >/dev/null) || fail "man -l $m failed: $w"
            [ -z "$w" ] || fail "$m: man -l warns: $w"
        fi
    done
else
    echo "check_install: no groff: the man pages' rendering is not checked" >&2
fi
documented() { # PAGE WORD...: each word is an item (.B, .BI, .BR) of the page
    page=$1
    shift
    for word; do
        grep -qE "^\.B[IR]? $word( |\$)" "$page" || fail "${page##*/} does not document $word"
    done
}
# The flags as the page spells them: \-s.
# shellcheck disable=SC2046 # words
documented "$man/man8/gsd.8" $("$dest$prefix/bin/gsd" -h | sed -n 's/^  -\([A-Za-z]\) .*/\\\\-\1/p')
# shellcheck disable=SC2046
documented "$man/man1/gsctl.1" $("$dest$prefix/bin/gsctl" complete commands)
for o in $("$dest$prefix/bin/gsctl" -h | grep -oE -- '--[a-z][a-z-]*') \
    $("$dest$prefix/bin/gsctl" start -h | grep -oE -- '--[a-z][a-z-]*'); do
    grep -qF -- "$(echo "$o" | sed 's/-/\\-/g')" "$man/man1/gsctl.1" ||
        fail "gsctl.1 does not document $o"
done
keys=$(sed -n '/const char \*const [a-z_]*keys\[\] = {/,/};/p; /^#define INTENSITY_KEYS/p' \
    daemon/config.c | grep -oE '"[a-z_]+"' | tr -d '"' | sort -u)
[ -n "$keys" ] || fail "no configuration keys found in daemon/config.c"
for k in $keys; do
    grep -qw -- "$k" "$man/man5/gsd.conf.5" || fail "gsd.conf.5 does not document the key $k"
done

# Everything below is outside the tree and finds gsd through pkg-config.
cd "$tmp"
export PKG_CONFIG_PATH="$dest$prefix/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest"
mcflags=$(pkg-config --cflags gsd-module) || fail "pkg-config gsd-module"
case "$mcflags" in *"-I$dest$prefix/include"*) ;; *) fail "gsd-module cflags: $mcflags" ;; esac
mkdir mods
cat >hello.c <<'EOF'
#include <gsd/module.h>

static gs_result hello_init(gs_server *self, const gs_value *args, void **state)
{
    (void)self, (void)args;
    *state = NULL;
    return gs_ok();
}

static gs_result hello_call(gs_server *self, const gs_value *req, gs_from from, void **state)
{
    (void)self, (void)from, (void)state;
    return gs_reply(gs_str(gs_is(req, "hello") ? "world" : "what?"));
}

GS_MODULE(.name = "hello", .vsn = 1, .init = hello_init, .handle_call = hello_call);
EOF
# shellcheck disable=SC2086 # the flags are words
$CC -shared -fPIC -Wall -Wextra -Werror $mcflags -o mods/hello.so hello.c || fail "building hello.so"
# The reference modules' installed sources build the same way.
mkdir srcmods
for f in "$dest$prefix"/share/doc/gsd/examples/modules/*.c; do
    # shellcheck disable=SC2086
    $CC -shared -fPIC -Wall -Wextra -Werror $mcflags -o "srcmods/$(basename "$f" .c).so" "$f" ||
        fail "building the installed ${f##*/}"
done

"$dest$prefix/bin/gsd" -s "$tmp/gsd.sock" -M "$dest$prefix/lib/gsd/modules:$tmp/mods" \
    2>"$tmp/gsd.log" &
pid=$!
gsctl() { timeout 10 "$dest$prefix/bin/gsctl" -s "$tmp/gsd.sock" "$@"; }
i=0
until gsctl ping >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "the installed gsd does not answer"
    sleep 0.05
done
gsctl start hello h >/dev/null || fail "gsctl start hello"
[ "$(gsctl call h hello)" = '"world"' ] || fail "gsctl call h hello"
gsctl start counter c 5 >/dev/null || fail "gsctl start counter (an installed module)"
[ "$(gsctl call c get)" = 5 ] || fail "gsctl call c get"

# The installed completion: commands, then the daemon's server names.
if command -v bash >/dev/null 2>&1; then
    # shellcheck disable=SC2016 # for bash
    comp=$(PATH="$dest$prefix/bin:$PATH" GSD_SOCKET="$tmp/gsd.sock" bash -c '
        . "$1" && complete -p gsctl >/dev/null || exit 1
        COMP_WORDS=(gsctl ca) COMP_CWORD=1 && _gsctl && echo "${COMPREPLY[*]}"
        COMP_WORDS=(gsctl call "") COMP_CWORD=2 && _gsctl && echo "${COMPREPLY[*]}"
    ' sh "$dest$compdir/gsctl") || fail "sourcing the installed completion"
    [ "$(echo "$comp" | sed -n 1p)" = "call cast" ] || fail "completing gsctl ca: $comp"
    servers=" $(echo "$comp" | sed -n 2p) "
    case "$servers" in *" c "*) ;; *) fail "completing gsctl call's server: $comp" ;; esac
    case "$servers" in *" h "*) ;; *) fail "completing gsctl call's server: $comp" ;; esac
fi

cat >client.c <<'EOF'
#include <gsclient.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argc;
    gsc *c = gsc_connect(argv[1]);
    gsc_reply *r = NULL;
    msgpack_object req = {.type = MSGPACK_OBJECT_STR, .via.str = {5, "hello"}};
    if (c == NULL || gsc_call(c, "h", &req, 0, &r) != GSC_OK)
        return 1;
    printf("%.*s\n", (int)r->result.via.str.size, r->result.via.str.ptr);
    gsc_reply_destroy(&r);
    gsc_close(&c);
    return 0;
}
EOF
ccflags=$(pkg-config --cflags gsclient) || fail "pkg-config gsclient"
libs=$(pkg-config --libs gsclient) || fail "pkg-config gsclient"
# A sanitized library wants its runtime in the program too.
san=
[ "$SANITIZE" != 1 ] || san="-fsanitize=address,undefined"
# shellcheck disable=SC2086
$CC $san -Wall -Wextra -Werror $ccflags -o client client.c $libs || fail "building a shared client"
# shellcheck disable=SC2086,SC2046
$CC $san -Wall -Wextra -Werror $ccflags -o client-static client.c \
    "$dest$prefix/lib/libgsclient.a" $(pkg-config --libs msgpack) || fail "building a static client"
LD_LIBRARY_PATH="$dest$prefix/lib" ldd ./client | grep -q "$dest$prefix/lib/libgsclient.so.1" ||
    fail "the client does not load the installed libgsclient.so.1"
[ "$(LD_LIBRARY_PATH="$dest$prefix/lib" timeout 10 ./client "$tmp/gsd.sock")" = world ] ||
    fail "the shared client's call"
[ "$(timeout 10 ./client-static "$tmp/gsd.sock")" = world ] || fail "the static client's call"

# The libevent adapter, from the installed header alone.
cat >evclient.c <<'EOF'
#include <gsclient-event.h>
#include <stdio.h>

static gsc *conn;

static void on_reply(gsc *c, uint32_t msgid, int status, gsc_reply *r, void *arg)
{
    (void)c, (void)msgid, (void)arg;
    if (status == GSC_OK)
        printf("%.*s\n", (int)r->result.via.str.size, r->result.via.str.ptr);
    gsc_reply_destroy(&r);
    gsc_close(&conn); /* no events left: the loop returns */
}

int main(int argc, char **argv)
{
    struct event_base *base = event_base_new();
    msgpack_object req = {.type = MSGPACK_OBJECT_STR, .via.str = {5, "hello"}};
    if (argc < 2 || base == NULL || (conn = gsc_connect(argv[1])) == NULL ||
        gsc_event_attach(conn, base) < 0 || gsc_call_async(conn, "h", &req, 0, on_reply, NULL) == 0)
        return 1;
    event_base_dispatch(base);
    event_base_free(base);
    return conn == NULL ? 0 : 1;
}
EOF
# shellcheck disable=SC2086
$CC $san -Wall -Wextra -Werror $ccflags -o evclient evclient.c $libs -levent ||
    fail "building a client with gsclient-event.h"
[ "$(LD_LIBRARY_PATH="$dest$prefix/lib" timeout 10 ./evclient "$tmp/gsd.sock")" = world ] ||
    fail "the libevent client's call"

kill "$pid"
wait "$pid" || fail "gsd exited with $? after SIGTERM"
pid=

cd "$src"
PATH="$tmp/bin:$PATH" ${MAKE:-make} -s uninstall DESTDIR="$dest" BUILD="$BUILD" \
    SANITIZE="$SANITIZE" >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log" >&2; fail "make uninstall"; }
[ ! -e "$tmp/ldconfig.log" ] || fail "make uninstall DESTDIR=... ran ldconfig"
# Exactly what was there before install: no file, no directory it made.
printf '%s\n' "$before" >"$tmp/before"
(cd "$dest" && find . -mindepth 1 | sort) >"$tmp/after"
left=$(comm -13 "$tmp/before" "$tmp/after")
[ -z "$left" ] || fail "make uninstall left: $left"
gone=$(comm -23 "$tmp/before" "$tmp/after")
[ -z "$gone" ] || fail "make uninstall removed what install did not make: $gone"
# Without DESTDIR, root's uninstall runs ldconfig, as root's install does:
# into a PREFIX with nothing in it, so that nothing is removed (every
# directory given, whatever the environment says).
no=$tmp/nowhere
PATH="$tmp/bin:$PATH" ${MAKE:-make} -s uninstall PREFIX="$no" BINDIR="$no" LIBDIR="$no" \
    INCLUDEDIR="$no" MODULEDIR="$no" PKGCONFIGDIR="$no" UNITDIR="$no" SYSUSERSDIR="$no" \
    MANDIR="$no" DOCDIR="$no" BASHCOMPDIR="$no" BUILD="$BUILD" SANITIZE="$SANITIZE" \
    >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log" >&2; fail "make uninstall"; }
if [ "$(id -u)" -eq 0 ]; then
    [ -e "$tmp/ldconfig.log" ] || fail "root's make uninstall did not run ldconfig"
else
    [ ! -e "$tmp/ldconfig.log" ] || fail "a user's make uninstall ran ldconfig"
fi
echo "check_install: ok (install twice, man pages, completion, docs, every module source," \
    "a module and three clients built with pkg-config, uninstall)"
