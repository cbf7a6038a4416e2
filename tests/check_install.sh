#!/bin/sh
# check_install.sh — `make install` into a temporary DESTDIR, then, with
# nothing from the source tree: a module built with pkg-config alone, run
# by the installed gsd and called by the installed gsctl and by clients
# linked against the installed libgsclient (shared and static); then
# `make uninstall` leaves no file behind.
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

cd "$src"
${MAKE:-make} -s install DESTDIR="$dest" BUILD="$BUILD" SANITIZE="$SANITIZE" >"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "make install"; }
for f in bin/gsd bin/gsctl include/gsclient.h include/gsd/module.h lib/libgsclient.a \
    lib/libgsclient.so lib/libgsclient.so.1 lib/pkgconfig/gsd-module.pc lib/pkgconfig/gsclient.pc \
    lib/gsd/modules/counter.so lib/systemd/system/gsd.service lib/systemd/system/gsd.socket \
    lib/sysusers.d/gsd.conf share/man/man8/gsd.8 share/man/man1/gsctl.1 \
    share/man/man3/gsd-module.3 share/doc/gsd/gsd.conf.example; do
    [ -e "$dest$prefix/$f" ] || fail "$prefix/$f was not installed"
done
"$dest$prefix/bin/gsd" -h | grep -q "$prefix/lib/gsd/modules" ||
    fail "the installed gsd's default module directory is not $prefix/lib/gsd/modules"

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
ccflags=$(pkg-config --cflags gsclient) && libs=$(pkg-config --libs gsclient) ||
    fail "pkg-config gsclient"
# A sanitized library wants its runtime in the program too.
san=
[ "$SANITIZE" != 1 ] || san="-fsanitize=address,undefined"
# shellcheck disable=SC2086
$CC $san -Wall -Wextra -Werror $ccflags -o client client.c $libs || fail "building a shared client"
# shellcheck disable=SC2086
$CC $san -Wall -Wextra -Werror $ccflags -o client-static client.c \
    "$dest$prefix/lib/libgsclient.a" $(pkg-config --libs msgpack) || fail "building a static client"
LD_LIBRARY_PATH="$dest$prefix/lib" ldd ./client | grep -q "$dest$prefix/lib/libgsclient.so.1" ||
    fail "the client does not load the installed libgsclient.so.1"
[ "$(LD_LIBRARY_PATH="$dest$prefix/lib" timeout 10 ./client "$tmp/gsd.sock")" = world ] ||
    fail "the shared client's call"
[ "$(timeout 10 ./client-static "$tmp/gsd.sock")" = world ] || fail "the static client's call"

kill "$pid"
wait "$pid" || fail "gsd exited with $? after SIGTERM"
pid=

cd "$src"
${MAKE:-make} -s uninstall DESTDIR="$dest" BUILD="$BUILD" SANITIZE="$SANITIZE" >"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log" >&2; fail "make uninstall"; }
left=$(find "$dest" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "check_install: ok (install, a module and two clients built with pkg-config, uninstall)"
