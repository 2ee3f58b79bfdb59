#!/bin/sh
# The modern tier's artifacts: Debian sid's builds of containerd 2.1.9, runc 1.3.6, the CNI
# plugins 1.9.1, etcd 3.5.30 and kubectl 1.36.4, repacked in the layouts of the upstream releases
# dtk downloads, into /var/cache/dtk-test/modern/<recipe>/files with an index.json of their
# sha256, sizes and Debian origins.
#
# Idempotent: exits at once when the cache is complete. Safe to run concurrently (flock). The
# package indexes come into a private apt state (its own sources list, lists, cache and state
# folders), so the machine's apt sources and lists are never modified.
#
# sid's runc links glibc 2.38 (__isoc23_strtol) and the harness nodes run bookworm (2.36): the
# runc binary gets its ELF interpreter and rpath pointed at /opt/dtk-sid/lib, and sid's loader,
# libc and libseccomp are packed as dtk-sid-libs.tar.gz for the test to place there. Everything
# else from sid needs only glibc 2.34.
#
# Environment: DTK_TEST_CACHE (default /var/cache/dtk-test), DTK_SID_MIRROR (default: the
# machine's Debian mirror, else deb.debian.org).
# Exit codes: 0 done or cached; 3 the Debian mirror is unreachable (callers skip with the reason).
set -eu

CACHE="${DTK_TEST_CACHE:-/var/cache/dtk-test}"
RECIPE=v1
OUT="$CACHE/modern/$RECIPE"
PACKAGES="containerd runc containernetworking-plugins etcd-server etcd-client kubectl libc6 libseccomp2"
SIDLIB=/opt/dtk-sid/lib

if [ -f "$OUT/.complete" ]; then
  echo "build_modern: cached in $OUT"
  exit 0
fi

mkdir -p "$CACHE/modern"
exec 9>"$CACHE/modern/$RECIPE.lock"
flock 9
if [ -f "$OUT/.complete" ]; then
  echo "build_modern: cached in $OUT"
  exit 0
fi

need=""
command -v patchelf >/dev/null 2>&1 || need="$need patchelf"
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need="$need debian-archive-keyring"
if [ -n "$need" ]; then
  echo "build_modern: installing$need"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need >/dev/null
fi

URI="${DTK_SID_MIRROR:-}"
if [ -z "$URI" ]; then
  URI=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*debian\)[[:space:]]*$/\1/p' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
fi
URI="${URI:-http://deb.debian.org/debian}"

WORK="$OUT.tmp.$$"
rm -rf "$OUT".tmp.*
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/apt/empty" "$WORK/deb" "$WORK/x"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $URI sid main" \
  >"$WORK/apt/sources.list"
# The machine's dpkg status is read (never written) so that apt resolves names; the candidate is
# always pinned to sid's version below, never the installed one.
APTOPTS="-o Dir::State=$WORK/apt -o Dir::State::Lists=$WORK/apt/lists
 -o Dir::Cache=$WORK/apt/cache -o Dir::Etc::SourceList=$WORK/apt/sources.list
 -o Dir::Etc::SourceParts=$WORK/apt/empty -o Dir::Etc::Preferences=/nonexistent
 -o Dir::Etc::PreferencesParts=$WORK/apt/empty -o Dir::State::status=/var/lib/dpkg/status
 -o APT::Sandbox::User=root"
# shellcheck disable=SC2086
if ! timeout 300 apt-get $APTOPTS update -q >"$WORK/update.log" 2>&1 ||
  grep -q '^[EW]:' "$WORK/update.log"; then
  cat "$WORK/update.log" >&2
  rm -rf "$WORK"
  echo "build_modern: cannot read sid's package index from $URI" >&2
  exit 3
fi

specs=""
for p in $PACKAGES; do
  # shellcheck disable=SC2086
  v=$(apt-cache $APTOPTS madison "$p" | awk -F'|' '$3 ~ /sid/ { gsub(/ /, "", $2); print $2; exit }')
  [ -n "$v" ] || { echo "build_modern: $p is not in sid" >&2; exit 1; }
  specs="$specs $p=$v"
  eval "VER_$(echo "$p" | tr -c 'a-z0-9\n' '_')=\$v"
done
echo "build_modern: downloading$specs"
# shellcheck disable=SC2086
(cd "$WORK/deb" && timeout 600 apt-get $APTOPTS download -q $specs >/dev/null)
for d in "$WORK"/deb/*.deb; do dpkg-deb -x "$d" "$WORK/x"; done
X="$WORK/x"

upstream() { echo "$1" | sed 's/^[0-9]*://; s/[~+-].*$//'; }
CTRD=$(upstream "$VER_containerd")
RUNC=v$(upstream "$VER_runc")
CNI=v$(upstream "$VER_containernetworking_plugins")
ETCD=v$(upstream "$VER_etcd_server")
KUBECTL=v$(upstream "$VER_kubectl")

pack() { # pack OUT DIR ENTRY...: deterministic tar.gz (sorted, mtime 0, root-owned, gzip -n)
  out=$1 dir=$2
  shift 2
  (cd "$dir" && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - "$@") |
    gzip -n -6 >"$out"
}

F="$WORK/files"
S="$WORK/stage"
mkdir -p "$F" "$S/containerd/bin" "$S/cni" "$S/etcd-$ETCD-linux-amd64" "$S/sid/lib"

for b in containerd containerd-shim-runc-v2 ctr; do
  install -m755 "$X/usr/bin/$b" "$S/containerd/bin/$b"
done
pack "$F/containerd-static-$CTRD-linux-amd64.tar.gz" "$S/containerd" \
  bin/containerd bin/containerd-shim-runc-v2 bin/ctr

install -m755 "$X/usr/sbin/runc" "$F/runc.amd64"
patchelf --set-interpreter "$SIDLIB/ld-linux-x86-64.so.2" --set-rpath "$SIDLIB" "$F/runc.amd64"

entries=""
for p in "$X"/usr/lib/cni/*; do
  [ -f "$p" ] || continue
  n=$(basename "$p")
  # Debian's extra fp (fingerprint) helpers are not in the upstream tarball.
  case "$n" in *-fp) continue ;; esac
  install -m755 "$p" "$S/cni/$n"
  entries="$entries ./$n"
done
# shellcheck disable=SC2086
pack "$F/cni-plugins-linux-amd64-$CNI.tgz" "$S/cni" $(echo $entries | tr ' ' '\n' | sort)

for b in etcd etcdctl etcdutl; do
  install -m755 "$X/usr/bin/$b" "$S/etcd-$ETCD-linux-amd64/$b"
done
pack "$F/etcd-$ETCD-linux-amd64.tar.gz" "$S" "etcd-$ETCD-linux-amd64"

install -m755 "$X/usr/bin/kubectl" "$F/kubectl"

for l in ld-linux-x86-64.so.2 libc.so.6 libseccomp.so.2; do
  src=$(find "$X/usr/lib" "$X/lib" -name "$l" 2>/dev/null | head -n1)
  [ -n "$src" ] || { echo "build_modern: $l not found in sid's packages" >&2; exit 1; }
  cp -L "$src" "$S/sid/lib/$l"
done
pack "$F/dtk-sid-libs.tar.gz" "$S/sid" lib/ld-linux-x86-64.so.2 lib/libc.so.6 lib/libseccomp.so.2

# Each binary says the version it is (the sid-loader runc through its own interpreter path).
mkdir -p "$SIDLIB.check.$$"
cp "$S/sid/lib/"* "$SIDLIB.check.$$/"
"$S/containerd/bin/containerd" --version | grep -q " v\?$CTRD" || { echo "containerd version" >&2; exit 1; }
"$SIDLIB.check.$$/ld-linux-x86-64.so.2" --library-path "$SIDLIB.check.$$" "$X/usr/sbin/runc" --version |
  grep -q "^runc version ${RUNC#v}" || { echo "runc version" >&2; exit 1; }
rm -rf "$SIDLIB.check.$$"
"$S/etcd-$ETCD-linux-amd64/etcd" --version | grep -q "etcd Version: ${ETCD#v}" || { echo "etcd version" >&2; exit 1; }
"$F/kubectl" version --client 2>/dev/null | grep -q "Client Version: $KUBECTL" || { echo "kubectl version" >&2; exit 1; }

entry() { # entry NAME VERSION KIND FILE ORIGIN
  f="$F/$4"
  printf '    {"name": "%s", "version": "%s", "kind": "%s", "file": "%s", "sha256": "%s", "size": %s, "origin": "%s"}' \
    "$1" "$2" "$3" "$4" "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "$5"
}
{
  echo '{'
  echo "  \"dir\": \"$OUT/files\","
  echo "  \"kubernetes\": false,"
  echo "  \"versions\": {\"kubernetes\": \"v1.35.0\", \"etcd\": \"$ETCD\", \"containerd\": \"$CTRD\", \"runc\": \"$RUNC\", \"crictl\": \"v1.35.0\", \"cniPlugins\": \"$CNI\", \"guestAdditions\": \"\"},"
  echo "  \"sidLibDir\": \"$SIDLIB\","
  echo '  "artifacts": ['
  entry containerd "$CTRD" tarball "containerd-static-$CTRD-linux-amd64.tar.gz" \
    "Debian sid containerd $VER_containerd (dynamically linked, glibc 2.34)"
  echo ','
  entry runc "$RUNC" binary runc.amd64 \
    "Debian sid runc $VER_runc, interpreter and rpath set to $SIDLIB (sid libc6 $VER_libc6, libseccomp2 $VER_libseccomp2)"
  echo ','
  entry cni-plugins "$CNI" tarball "cni-plugins-linux-amd64-$CNI.tgz" \
    "Debian sid containernetworking-plugins $VER_containernetworking_plugins"
  echo ','
  entry etcd "$ETCD" tarball "etcd-$ETCD-linux-amd64.tar.gz" \
    "Debian sid etcd-server $VER_etcd_server, etcd-client $VER_etcd_client"
  echo ','
  entry kubectl "$KUBECTL" binary kubectl "Debian sid kubectl $VER_kubectl"
  echo ','
  entry sid-libs "$VER_libc6" tarball dtk-sid-libs.tar.gz \
    "Debian sid libc6 $VER_libc6 and libseccomp2 $VER_libseccomp2: the loader, libc and libseccomp of sid's runc"
  echo
  echo '  ]'
  echo '}'
} >"$WORK/index.json"

rm -rf "$WORK/apt" "$WORK/deb" "$WORK/x" "$WORK/stage" "$WORK/update.log"
date -u +%Y-%m-%dT%H:%M:%SZ >"$WORK/.complete"
rm -rf "$OUT"
# index.json names the final folder: the rename makes it true.
mv "$WORK" "$OUT"
echo "build_modern: $(ls "$OUT/files" | tr '\n' ' ')in $OUT"
