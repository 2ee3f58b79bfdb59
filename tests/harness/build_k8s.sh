#!/bin/sh
# Builds the Kubernetes 1.20.2 server binaries from Debian's source package `kubernetes`
# (1.20.5+really1.20.2) into /var/cache/dtk-test/k8s-1.20.2/bin, once per machine, and adds the
# kubectl 1.20.2 of Debian's binary package `kubernetes-client` (same source) beside them.
#
# Idempotent: exits at once when the cache is complete. Safe to run concurrently (flock).
# Needs only Debian apt: the package indexes are fetched into private apt state directories, so
# the machine's own apt sources and lists are never modified (nothing to restore afterwards).
#
# Environment: DTK_TEST_CACHE (default /var/cache/dtk-test), DTK_K8S_KEEP_TREE=1 keeps the build
# tree (1.5 GB) for faster rebuilds.
set -eu

CACHE="${DTK_TEST_CACHE:-/var/cache/dtk-test}"
VERSION=1.20.2
OUT="$CACHE/k8s-$VERSION"
BINS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"

complete() {
  [ -f "$OUT/.complete" ] || return 1
  for b in $BINS; do [ -x "$OUT/bin/$b" ] || return 1; done
  return 0
}

have_kubectl() {
  [ -x "$OUT/bin/kubectl" ]
}

if complete && have_kubectl; then
  echo "build_k8s: cached in $OUT/bin"
  exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/k8s-$VERSION.lock"
flock 9

# The Debian mirror the machine already uses (deb822 or one-line format).
URI=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*debian\)[[:space:]]*$/\1/p' \
  /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
if [ -z "$URI" ]; then
  URI=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1 || true)
fi
URI="${URI:-http://deb.debian.org/debian}"

# private_apt DIR TYPE: an apt state in DIR that knows only "TYPE URI bookworm main";
# sets APTOPTS for apt-get.
private_apt() {
  mkdir -p "$1/apt/lists/partial" "$1/apt/archives/partial"
  echo "$2 [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $URI bookworm main" \
    >"$1/apt/sources.list"
  APTOPTS="-o Dir::Etc::SourceList=$1/apt/sources.list -o Dir::Etc::SourceParts=/dev/null
   -o Dir::State::Lists=$1/apt/lists -o Dir::Cache::Archives=$1/apt/archives
   -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Sandbox::User=root"
  # shellcheck disable=SC2086
  apt-get $APTOPTS update -q
}

fetch_kubectl() {
  kwork="$CACHE/k8s-$VERSION.kubectl"
  rm -rf "$kwork"
  mkdir -p "$kwork"
  echo "build_k8s: fetching kubectl from Debian's kubernetes-client at $URI"
  private_apt "$kwork" deb
  # shellcheck disable=SC2086
  (cd "$kwork" && apt-get $APTOPTS download -q kubernetes-client)
  dpkg-deb -x "$(ls "$kwork"/kubernetes-client_*.deb | head -n1)" "$kwork/x"
  install -m755 "$kwork/x/usr/bin/kubectl" "$OUT/bin/kubectl.tmp.$$"
  "$OUT/bin/kubectl.tmp.$$" version --client >/dev/null
  mv "$OUT/bin/kubectl.tmp.$$" "$OUT/bin/kubectl"
  rm -rf "$kwork"
}

if complete; then
  have_kubectl || fetch_kubectl
  echo "build_k8s: cached in $OUT/bin"
  exit 0
fi

start=$(date +%s)
need=""
command -v go >/dev/null 2>&1 || need="$need golang-go"
command -v rsync >/dev/null 2>&1 || need="$need rsync"
command -v jq >/dev/null 2>&1 || need="$need jq"
command -v make >/dev/null 2>&1 || need="$need make"
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need="$need debian-archive-keyring"
if [ -n "$need" ]; then
  echo "build_k8s: installing$need"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need
fi

WORK="$CACHE/k8s-$VERSION.build"
# An interrupted earlier build left its unpacked tree and Go build cache: resume from them.
if [ ! -f "$WORK/tree/.unpacked" ]; then
  rm -rf "$WORK/apt" "$WORK/src" "$WORK/tree"
  mkdir -p "$WORK/src"

  private_apt "$WORK" deb-src
  echo "build_k8s: fetching the source package from $URI"
  # shellcheck disable=SC2086
  (cd "$WORK/src" && apt-get $APTOPTS source --download-only -q kubernetes)

  ORIG=$(ls "$WORK/src"/kubernetes_*.orig.tar.* | head -n1)
  mkdir -p "$WORK/tree"
  tar -xf "$ORIG" -C "$WORK/tree" --strip-components=1
  rm -rf "$WORK/apt" "$WORK/src"
  touch "$WORK/tree/.unpacked"
fi
cd "$WORK/tree"
mkdir -p .go/src/k8s.io
ln -sfn ../../.. .go/src/k8s.io/kubernetes
cd .go/src/k8s.io/kubernetes

export GOPATH="$WORK/tree/.go" CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=vendor \
  KUBE_GIT_VERSION=v$VERSION KUBE_GIT_TREE_STATE=clean GOCACHE="$WORK/gocache"
for b in $BINS; do
  echo "build_k8s: building $b ($(($(date +%s) - start)) s so far)"
  make WHAT="cmd/$b"
done

STAGE="$OUT.tmp.$$"
rm -rf "$STAGE"
mkdir -p "$STAGE/bin"
for b in $BINS; do
  install -m755 "_output/local/bin/linux/amd64/$b" "$STAGE/bin/$b"
done
"$STAGE/bin/kube-apiserver" --version >"$STAGE/version.txt"
date -u +%Y-%m-%dT%H:%M:%SZ >"$STAGE/.complete"
rm -rf "$OUT"
mv "$STAGE" "$OUT"
cd /
if [ "${DTK_K8S_KEEP_TREE:-0}" != 1 ]; then rm -rf "$WORK"; fi
fetch_kubectl
echo "build_k8s: built $(cat "$OUT/version.txt") in $(($(date +%s) - start)) s into $OUT/bin"
