#!/bin/sh
# Makes the image's root file system in DEST from the Debian root this runs in, where the
# packages of packages.txt are installed and configured (the build stage of
# deploy/Containerfile, or the root `cargo xtask image` builds with mmdebstrap).
#
# DEST receives the files of the packages of packages.txt and of everything they depend on,
# except the packages of exclude.txt (a dependency on one of those is not followed), plus what
# their installation generated (the CA bundle, the time zone, the linker cache). Manual pages,
# documentation (the copyright files stay) and translations are left out. Then the image's own
# files: /etc/passwd and /etc/group with the user `musubi` (UID/GID 10001), /tmp, the data
# directory /var/lib/musubi, and /var/lib/dpkg/status listing exactly the copied packages (for
# vulnerability scanners). No shell is copied: if one would be, this fails.
#
# Usage: make-root.sh DEST      (as root; DEST must not exist or be empty)
# Needs only what every Debian root has (POSIX sh, dpkg-query, awk, sed, sort, tar, find).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 DEST" >&2; exit 2; }
dest=$1
case "$dest" in
  /*) ;;
  *) echo "make-root: DEST must be an absolute path" >&2; exit 2 ;;
esac
if [ -d "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
  echo "make-root: $dest is not empty" >&2
  exit 2
fi
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export LC_ALL=C

# A list file without comments and blank lines: one name a line.
names() { sed -e 's/#.*//' -e 's/[[:space:]]//g' "$1" | grep -v '^$' || true; }
names "$here/packages.txt" >"$work/wanted"
names "$here/exclude.txt" >"$work/excluded"

# Every installed package: name, what it provides, what it needs.
dpkg-query -W -f='${db:Status-Status}\t${Package}\t${Provides}\t${Pre-Depends}, ${Depends}\n' \
  >"$work/installed"

# The closure: from packages.txt along Pre-Depends and Depends. Of alternatives (a | b), the
# first one installed is followed (or an installed package providing it). Output lines:
#   +<TAB>package<TAB>why        a package whose files are copied
#   -<TAB>package<TAB>wanted by  a dependency left out by exclude.txt
#   !<TAB>message                an error
awk -F '\t' '
  function bare(s) {
    sub(/\(.*\)/, "", s); sub(/:.*/, "", s); gsub(/[ \t]/, "", s); return s
  }
  function add(p, why) {
    if (p in chosen) return
    chosen[p] = why; queue[tail++] = p
  }
  FILENAME == ARGV[1] { want[++nwant] = $0; next }
  FILENAME == ARGV[2] { excluded[$0] = 1; next }
  $1 == "installed" {
    installed[$2] = 1; deps[$2] = $4
    n = split($3, pv, ",")
    for (i = 1; i <= n; i++) { v = bare(pv[i]); if (v != "" && !(v in provider)) provider[v] = $2 }
  }
  END {
    for (i = 1; i <= nwant; i++) {
      p = want[i]
      if (p in excluded) { print "!\t" p " is in packages.txt and in exclude.txt"; bad = 1 }
      else if (!(p in installed)) { print "!\t" p " (packages.txt) is not installed"; bad = 1 }
      else add(p, "packages.txt")
    }
    while (head < tail) {
      p = queue[head++]
      ngroups = split(deps[p], groups, ",")
      for (g = 1; g <= ngroups; g++) {
        nalts = split(groups[g], alts, "|"); pick = ""; empty = 1
        for (a = 1; a <= nalts; a++) {
          name = bare(alts[a])
          if (name == "") continue
          empty = 0
          if (name in installed) { pick = name; break }
          if (name in provider) { pick = provider[name]; break }
        }
        if (empty) continue
        if (pick == "") { print "!\tnothing installed satisfies the dependency " groups[g] " of " p; bad = 1; continue }
        if (pick in excluded) {
          if (pick in left) by = left[pick] ", " p; else by = p
          left[pick] = by; continue
        }
        add(pick, p)
      }
    }
    for (p in chosen) print "+\t" p "\t" chosen[p]
    for (p in left) print "-\t" p "\t" left[p]
    exit bad
  }
' "$work/wanted" "$work/excluded" "$work/installed" >"$work/closure.raw" || {
  sed -n 's/^!\t/make-root: /p' "$work/closure.raw" >&2
  exit 1
}
sort "$work/closure.raw" >"$work/closure"
awk -F '\t' '$1 == "+" { print $2 }' "$work/closure" >"$work/packages"

echo "make-root: $(wc -l <"$work/packages") packages (and what needs them):"
awk -F '\t' '$1 == "+" { printf "  %-28s %s\n", $2, $3 }' "$work/closure"
echo "make-root: left out (exclude.txt), though these depend on them:"
awk -F '\t' '$1 == "-" { printf "  %-28s %s\n", $2, $3 }' "$work/closure"

# Merged /usr: /bin, /lib… are links into /usr. Copy each file once, under /usr, and recreate
# the links first so that both spellings keep working.
merged=""
for d in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$d" ]; then
    ln -s "$(readlink "/$d")" "$dest/$d"
    case "$(readlink "/$d")" in
      usr/"$d" | /usr/"$d") merged="$merged $d" ;;
    esac
  fi
done

# The packages' files (dpkg-query -L also prints "diverted by" notes: paths only), relative to
# /, without manual pages, documentation other than copyright files, and translations.
while read -r p; do
  dpkg-query -L "$p"
done <"$work/packages" | sed -n 's|^/||p' >"$work/files.raw"
# What installation generated, kept: the CA bundle and its hashed links, the time zone, the
# dynamic linker's cache, fontconfig's choices.
for f in etc/ssl/certs etc/fonts etc/localtime etc/timezone etc/ld.so.cache; do
  if [ -e "/$f" ] || [ -L "/$f" ]; then
    (cd / && find "$f") >>"$work/files.raw"
  fi
done
for d in $merged; do
  printf 's|^%s/|usr/%s/|\n' "$d" "$d"
done >"$work/canon.sed"
sed -f "$work/canon.sed" "$work/files.raw" |
  awk '
    $0 == "." || $0 == "" { next }
    /^usr\/share\/(man|info|lintian|linda|bug|locale|bash-completion|zsh)(\/|$)/ { next }
    /^usr\/share\/doc\// { if ($0 ~ /\/copyright$/ || $0 ~ /^usr\/share\/doc\/[^\/]+$/) print; next }
    { print }
  ' |
  sort -u >"$work/files.all"
for d in $merged; do
  grep -v -x "$d" "$work/files.all" >"$work/files.tmp" || true
  mv "$work/files.tmp" "$work/files.all"
done
# Only what is there: a root made with dpkg path-excludes (debian:bookworm-slim) lacks some.
while IFS= read -r f; do
  if [ -e "/$f" ] || [ -L "/$f" ]; then printf '%s\n' "$f"; fi
done <"$work/files.all" >"$work/files"

(cd / && tar --numeric-owner --no-recursion --verbatim-files-from -cf "$work/root.tar" -T "$work/files")
tar -C "$dest" --numeric-owner -xpf "$work/root.tar"

# The image's own files.
mkdir -p "$dest/etc" "$dest/root" "$dest/tmp" "$dest/var/tmp" "$dest/var/lib/musubi" \
  "$dest/var/lib/dpkg" "$dest/usr/local/bin" "$dest/proc" "$dest/sys" "$dest/dev" "$dest/run"
chmod 1777 "$dest/tmp" "$dest/var/tmp"
chmod 0700 "$dest/root"
chown 10001:10001 "$dest/var/lib/musubi"
chmod 0750 "$dest/var/lib/musubi"
cat >"$dest/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
musubi:x:10001:10001:Musubi:/var/lib/musubi:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$dest/etc/group" <<'EOF'
root:x:0:
musubi:x:10001:
nogroup:x:65534:
EOF
cat >"$dest/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
networks: files
protocols: files
services: files
EOF
chmod 0644 "$dest/etc/passwd" "$dest/etc/group" "$dest/etc/nsswitch.conf"
# The copied packages, as dpkg would list them, for scanners (Trivy, Grype, Syft).
# shellcheck disable=SC2046
dpkg-query -s $(cat "$work/packages") >"$dest/var/lib/dpkg/status"

# No set-user-ID or set-group-ID programs.
find "$dest" -xdev -type f -perm /6000 -exec chmod ug-s {} +

# No shell: nothing may start one.
shells=$(cd "$dest" && for f in bin/sh bin/bash bin/dash bin/rbash usr/bin/*sh usr/sbin/*sh; do
  if [ -e "$f" ] || [ -L "$f" ]; then echo "/$f"; fi
done)
if [ -n "$shells" ]; then
  echo "make-root: a shell would be in the image: $shells (add its package to exclude.txt)" >&2
  exit 1
fi
echo "make-root: $(du -sh "$dest" | cut -f1) in $dest, no shell"
