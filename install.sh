#!/bin/sh
# Installs a prebuilt dtk: downloads the binary for this OS and CPU and the release's SHA256SUMS,
# checks the binary against it, and moves it into place in one rename. On any failure (download,
# checksum, platform, missing tool) nothing is installed and any dtk already there is untouched.
#
#   curl -fsSLO https://github.com/OWNER/dtk/releases/latest/download/install.sh && sh install.sh
#
# Environment:
#   DTK_VERSION       the release to install, e.g. 1.2.3 (default: the latest release)
#   DTK_INSTALL_DIR   where to put dtk (default: $HOME/.local/bin)
#   DTK_DOWNLOAD_URL  the folder holding the release's files, for a mirror or an air-gapped lab
#                     (default: the GitHub release of DTK_REPO)
#   DTK_REPO          the GitHub repository, owner/name (default: the one this script came from)
#
# POSIX sh; needs curl or wget, and sha256sum or shasum.
set -eu

# Stamped by the release workflow with the repository that published this script.
DTK_REPO_DEFAULT=

say() { printf 'install.sh: %s\n' "$*" >&2; }
die() {
  printf 'install.sh: error: %s\n' "$1" >&2
  [ -z "${2:-}" ] || printf 'install.sh: hint: %s\n' "$2" >&2
  exit 1
}

platform() {
  os=$(uname -s)
  arch=$(uname -m)
  case "$os" in
    Linux) os=linux ;;
    Darwin) die "macOS is not supported: dtk's KVM driver is Linux-only and its VirtualBox driver builds x86_64 VMs and reads Linux's /proc and /sys" \
      "run dtk on a Linux host (amd64 or arm64)" ;;
    *) die "unsupported operating system \"$os\": dtk is released for Linux only" \
      "build from source with 'deno task build' if Deno supports your platform" ;;
  esac
  case "$arch" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "unsupported architecture \"$arch\": dtk is released for amd64 (x86_64) and arm64 (aarch64)" \
      "run from source: 'deno task dtk' in a clone, where Deno supports your CPU" ;;
  esac
  echo "$os-$arch"
}

# sha256 of a file, lowercase hex, with whichever tool this system has.
sha256() {
  if command -v sha256sum > /dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

# download URL FILE: fails with the HTTP status where the tool reports it.
download() {
  if command -v curl > /dev/null 2>&1; then
    status=$(curl -sSL --retry 2 -o "$2" -w '%{http_code}' "$1") ||
      die "could not download $1 (curl exit $?)" "check the network, or set DTK_DOWNLOAD_URL to a mirror"
    [ "$status" = 200 ] ||
      die "could not download $1: HTTP $status" \
        "check that release ${DTK_VERSION:-latest} exists and has this file, or set DTK_VERSION"
  else
    wget -q -O "$2" "$1" ||
      die "could not download $1 (wget exit $?; a 404 means no such release or file)" \
        "check DTK_VERSION, or set DTK_DOWNLOAD_URL to a mirror"
  fi
}

main() {
  plat=$(platform)

  command -v sha256sum > /dev/null 2>&1 || command -v shasum > /dev/null 2>&1 ||
    die "neither sha256sum nor shasum is installed, so the download cannot be verified" \
      "install coreutils (sha256sum) or perl (shasum), then run this again"
  command -v curl > /dev/null 2>&1 || command -v wget > /dev/null 2>&1 ||
    die "neither curl nor wget is installed" "install curl, then run this again"

  version=${DTK_VERSION:-}
  version=${version#v}
  repo=${DTK_REPO:-$DTK_REPO_DEFAULT}
  if [ -n "${DTK_DOWNLOAD_URL:-}" ]; then
    base=${DTK_DOWNLOAD_URL%/}
  elif [ -z "$repo" ]; then
    die "no release to download from: this install.sh names no repository" \
      "set DTK_REPO=owner/name (the GitHub repository) or DTK_DOWNLOAD_URL"
  elif [ -n "$version" ]; then
    base="https://github.com/$repo/releases/download/v$version"
  else
    base="https://github.com/$repo/releases/latest/download"
  fi

  install_dir=${DTK_INSTALL_DIR:-${HOME:?HOME is not set}/.local/bin}
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/dtk-install.XXXXXX")
  staged=
  trap 'rm -rf "$tmp"; [ -z "$staged" ] || rm -f "$staged"' EXIT
  trap 'exit 130' INT TERM HUP

  say "downloading $base/SHA256SUMS"
  download "$base/SHA256SUMS" "$tmp/SHA256SUMS"

  # The binary's name comes from SHA256SUMS (dtk-<version>-<platform>), so "latest" needs no API.
  if [ -n "$version" ]; then
    name="dtk-$version-$plat"
    line=$(grep -E "^[0-9a-fA-F]{64}  \\*?$name\$" "$tmp/SHA256SUMS" || true)
  else
    line=$(grep -E "^[0-9a-fA-F]{64}  \\*?dtk-[0-9A-Za-z.+-]+-$plat\$" "$tmp/SHA256SUMS" || true)
  fi
  [ -n "$line" ] ||
    die "SHA256SUMS at $base lists no dtk${version:+ $version} binary for $plat" \
      "see the release's files, or set DTK_VERSION"
  [ "$(printf '%s\n' "$line" | wc -l)" -eq 1 ] ||
    die "SHA256SUMS at $base lists more than one dtk binary for $plat" "set DTK_VERSION"
  expected=$(printf '%s\n' "$line" | cut -d' ' -f1 | tr 'A-F' 'a-f')
  name=$(printf '%s\n' "$line" | cut -d' ' -f3 | sed 's/^\*//')

  say "downloading $base/$name"
  download "$base/$name" "$tmp/$name"
  actual=$(sha256 "$tmp/$name")
  [ "$actual" = "$expected" ] ||
    die "checksum mismatch for $name: SHA256SUMS says $expected, the download is $actual; nothing was installed" \
      "try again; if it persists, the release or the mirror is damaged: report it"
  say "sha256 $actual  $name: matches SHA256SUMS"

  mkdir -p "$install_dir" || die "cannot create $install_dir" "set DTK_INSTALL_DIR to a folder you can write"
  # Copied beside its final place, then renamed over it: no one ever runs a half-written dtk.
  staged="$install_dir/.dtk.install.$$"
  cp "$tmp/$name" "$staged" || die "cannot write to $install_dir" "set DTK_INSTALL_DIR to a folder you can write"
  chmod 0755 "$staged"
  mv -f "$staged" "$install_dir/dtk" || die "cannot install to $install_dir/dtk" "set DTK_INSTALL_DIR to a folder you can write"
  staged=

  say "installed $name as $install_dir/dtk"
  case ":${PATH:-}:" in
    *":$install_dir:"*) ;;
    *) say "$install_dir is not on PATH: add it, e.g. export PATH=\"$install_dir:\$PATH\"" ;;
  esac
  say "to check where it was built (GitHub artifact attestation, needs the gh CLI):"
  say "  gh attestation verify $install_dir/dtk --repo ${repo:-OWNER/dtk}"
}

main "$@"
