#!/bin/sh
# Installs the Debian packages gsd needs to build and test, if any is missing.
set -e
pkgs="make gcc libc6-dev pkg-config libevent-dev libmsgpack-dev libjansson-dev libconfig-dev uthash-dev check libsubunit-dev systemd procps python3 python3-msgpack python3-venv python3-pip python3-setuptools python3-wheel valgrind clang libclang-rt-14-dev prometheus tmux erlang-base erlang-dev elixir"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "gsd needs these Debian packages:$missing (run as root to install them)" >&2
    exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
