#!/usr/bin/env bash
# Checks README's two commands on a fresh machine: builds a minimal Debian root with
# mmdebstrap (only what a Rust install needs to link, plus git), lends it this machine's Rust
# toolchain, copies the working tree in, and runs inside it with chroot:
#   1. `cargo xtask demo` (installs the PostgreSQL server binaries, builds, starts the demo);
#      /healthz must answer, then SIGINT (Ctrl-C) must stop it cleanly;
#   2. the same again: it must install nothing;
#   3. `cargo xtask test` (installs Redis, aiosmtpd, Node.js, npm, Chromium; runs every test);
#   4. `cargo xtask setup --check test`: nothing left to install.
# Slow (a release and a debug build from scratch), needs root, and is not part of CI.
#
# Usage: sudo xtask/fresh-root.sh [options]   (or: cargo xtask fresh-check [options])
#   --suite NAME      Debian suite (default trixie: bookworm's Node.js 18 is too old for the
#                     browser tests, which the set-up reports)
#   --mirror URL      Debian mirror (default http://deb.debian.org/debian)
#   --dir DIR         work directory (default /var/tmp/musubi-fresh-root; emptied first)
#   --only demo|test  run only the demo steps (1, 2) or only the test steps (3, 4)
#   --reuse-target    start from a copy of this checkout's target/ (saves build time; the
#                     system packages are as fresh as without it)
#   --keep            keep the root afterwards (mounts are always removed)
#   --shell           open a shell in the root instead of running the steps
#
# The log of each step is in DIR/logs/ (kept; the root itself is removed unless --keep).
set -euo pipefail

suite=trixie
mirror=http://deb.debian.org/debian
work=/var/tmp/musubi-fresh-root
only=""
reuse_target=false
keep=false
shell=false
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --dir) work="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --reuse-target) reuse_target=true; shift ;;
    --keep) keep=true; shift ;;
    --shell) shell=true; shift ;;
    *) echo "fresh-root: unknown option $1 (see the top of $0)" >&2; exit 2 ;;
  esac
done

say() { echo "fresh-root: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, mount, chroot): run it with sudo"
case "$work" in
  /*) ;;
  *) die "--dir must be an absolute path" ;;
esac
case "$work" in
  *[[:space:]]*) die "--dir must not contain spaces" ;;
esac
src="$(cd "$(dirname "$0")/.." && pwd -P)"
rust_home="${SUDO_USER:+$(getent passwd "$SUDO_USER" | cut -d: -f6)}"
rust_home="${rust_home:-$HOME}"
cargo_home="${CARGO_HOME:-$rust_home/.cargo}"
rustup_home="${RUSTUP_HOME:-$rust_home/.rustup}"
[ -x "$cargo_home/bin/cargo" ] || die "no Rust toolchain at $cargo_home (set CARGO_HOME)"
[ -d "$rustup_home/toolchains" ] || die "no rustup toolchains at $rustup_home (set RUSTUP_HOME)"

root="$work/root"
logs="$work/logs"

mounts_under() { awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/mounts; }

# Stops whatever still runs in the root and unmounts everything under it, deepest first.
cleanup() {
  local status=$?
  set +e
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ]; then
      kill -TERM "${p#/proc/}" 2>/dev/null
    fi
  done
  sleep 2
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ]; then
      kill -KILL "${p#/proc/}" 2>/dev/null
    fi
  done
  for m in $(mounts_under "$root" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  if [ -n "$(mounts_under "$root")" ]; then
    say "could not unmount: $(mounts_under "$root" | tr '\n' ' ')"
    status=1
  elif ! $keep; then
    rm -rf "$root" "$work/cargo-upper" "$work/cargo-work"
    say "removed the root; logs are in $logs"
  else
    say "kept $root (no mounts left)"
  fi
  exit "$status"
}

# Never empty a directory that still has something mounted in it (it could be the toolchain).
[ -z "$(mounts_under "$work")" ] || die "something is mounted under $work; unmount it first"
rm -rf "$work"
mkdir -p "$root" "$logs"
trap cleanup EXIT INT TERM

if ! command -v mmdebstrap >/dev/null 2>&1; then
  say "installing mmdebstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap
fi

# What a Rust install needs to link (rustup asks for a C toolchain) and git: nothing else.
say "building a minimal $suite root in $root"
mmdebstrap --variant=minbase --include=ca-certificates,git,gcc,libc6-dev \
  "$suite" "$root" "$mirror" >"$logs/mmdebstrap.log" 2>&1 \
  || { tail -20 "$logs/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
# As in container images: packages must not start services in the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Behind a TLS-inspecting proxy the root must trust what this machine trusts (npm, cargo);
# Node.js reads only its own CA list unless told otherwise.
extra_ca=""
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1 || say "update-ca-certificates failed"
  extra_ca="NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"
fi

mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
# Chromium needs a shared-memory mount of its own size.
mkdir -p "$root/dev/shm" && mount -t tmpfs -o size=512m tmpfs "$root/dev/shm"

# The toolchain, read-only; cargo's home writable on top of a read-only lower layer (its
# registry cache saves the downloads, its writes stay in the root).
mkdir -p "$root/root/.rustup" "$root/root/.cargo" "$work/cargo-upper" "$work/cargo-work"
mount --bind "$rustup_home" "$root/root/.rustup"
mount -o remount,bind,ro "$root/root/.rustup"
if ! mount -t overlay overlay \
  -o "lowerdir=$cargo_home,upperdir=$work/cargo-upper,workdir=$work/cargo-work" \
  "$root/root/.cargo" 2>/dev/null; then
  say "no overlayfs here: copying $cargo_home"
  cp -a "$cargo_home/." "$root/root/.cargo/"
fi

# The working tree as git sees it (committed or not, without ignored files), at the same path
# so that --reuse-target's build cache stays valid.
say "copying the working tree to $src inside the root"
mkdir -p "$root$src"
(cd "$src" && git ls-files -z --cached --others --exclude-standard \
  | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$root$src"
if $reuse_target && [ -d "$src/target" ]; then
  say "copying target/ (--reuse-target)"
  mkdir -p "$root$src/target"
  cp -a --reflink=auto "$src/target/." "$root$src/target/"
  rm -rf "$root$src/target/xtask"
fi

# A login-like environment: only what a new user's shell would have.
root_env=(HOME=/root USER=root LANG=C.UTF-8 TERM=dumb CARGO_TERM_COLOR=never
  PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin $extra_ca)
in_root() { chroot "$root" /usr/bin/env -i "${root_env[@]}" "$@"; }

if $shell; then
  say "opening a shell in the root (exit to clean up)"
  in_root bash -c "cd '$src' && exec bash -i" || true
  exit 0
fi

procs_in_root() {
  local n=0
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && n=$((n + 1))
  done
  echo "$n"
}

# Alive and not yet a zombie (kill -0 succeeds on an unreaped child).
alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# A port nobody answers on.
port=$((20000 + RANDOM % 20000))
while curl -s --max-time 1 "http://127.0.0.1:$port/" >/dev/null 2>&1; do port=$((port + 1)); done
healthz() { curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz" 2>/dev/null; }

# Starts the demo, waits for /healthz, stops it with SIGINT as Ctrl-C would.
demo_once() {
  local log="$logs/$1.log"
  say "step $1: cargo xtask demo (log: $log)"
  local start=$SECONDS
  # exec all the way down (this subshell, chroot, env, bash, cargo xtask, cargo run): $pid
  # ends up being musubi itself, so the SIGINT below is what Ctrl-C would send it.
  (exec chroot "$root" /usr/bin/env -i "${root_env[@]}" \
    bash -c "cd '$src' && exec cargo xtask demo --listen 127.0.0.1:$port") >"$log" 2>&1 &
  local pid=$!
  until healthz >/dev/null; do
    if ! alive "$pid"; then
      tail -30 "$log" >&2
      die "step $1: the demo exited before /healthz answered"
    fi
    if [ $((SECONDS - start)) -gt 5400 ]; then die "step $1: no /healthz after 90 minutes"; fi
    sleep 5
  done
  say "step $1: /healthz answered '$(healthz)' after $((SECONDS - start))s"
  say "step $1: now running as pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
  kill -INT "$pid"
  local waited=0
  while alive "$pid" && [ $waited -lt 60 ]; do sleep 1; waited=$((waited + 1)); done
  if alive "$pid"; then die "step $1: the demo did not stop within 60s of SIGINT"; fi
  local rc=0
  wait "$pid" || rc=$?
  say "step $1: stopped by SIGINT in ${waited}s with status $rc"
  [ "$(procs_in_root)" = 0 ] || die "step $1: processes are left in the root after the demo stopped"
  [ "$rc" = 0 ] || die "step $1: the demo exited with status $rc"
}

installs_nothing() {
  if grep -E "set-up: install" "$1"; then die "$2 installed something on a second run"; fi
  say "$2: installed nothing"
}

if [ "$only" != test ]; then
  demo_once 1-demo
  grep -E "set-up: " "$logs/1-demo.log" >&2 || true
  demo_once 2-demo-again
  installs_nothing "$logs/2-demo-again.log" "step 2"
fi

if [ "$only" != demo ]; then
  say "step 3: cargo xtask test (log: $logs/3-test.log)"
  start=$SECONDS
  if ! in_root bash -c "cd '$src' && cargo xtask test" >"$logs/3-test.log" 2>&1; then
    tail -60 "$logs/3-test.log" >&2
    die "step 3: cargo xtask test failed after $((SECONDS - start))s"
  fi
  grep -E "set-up: |test result:|^# (pass|fail)" "$logs/3-test.log" >&2 || true
  say "step 3: cargo xtask test passed in $((SECONDS - start))s"
  say "step 4: cargo xtask setup --check test"
  in_root bash -c "cd '$src' && cargo xtask setup --check test" >"$logs/4-check.log" 2>&1 \
    || { cat "$logs/4-check.log" >&2; die "step 4: something is still missing"; }
  installs_nothing "$logs/4-check.log" "step 4"
fi

say "all steps passed"
