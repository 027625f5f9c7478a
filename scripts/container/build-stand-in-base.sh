#!/usr/bin/env bash
# Builds a LOCAL STAND-IN for the base image docker.io/library/node:20-bookworm-slim, for machines
# that cannot pull from Docker Hub. It is not the official image: it is
#   - a Debian bookworm "minbase" root filesystem made by debootstrap from a Debian mirror
#     (debootstrap is fetched from that mirror when it is not installed), with apt lists,
#     package caches, docs, man pages and locales removed as in debian:bookworm-slim;
#   - this host's Node.js 20 binary and its npm, at the paths the official image uses
#     (/usr/local/bin/node, /usr/local/lib/node_modules/npm, /usr/local/bin/{npm,npx});
#   - the official image's `node` user and group (uid/gid 1000, home /home/node).
# The image is tagged with the official name so that the Dockerfile builds unchanged, and is
# labelled `io.github.resnet-serve.stand-in=true` so that anything can tell it apart.
#
# Usage: scripts/container/build-stand-in-base.sh [IMAGE]   (run as root; needs podman)
# Env:   DEBIAN_MIRROR (default http://deb.debian.org/debian), STAND_IN_CACHE (folder for the
#        debootstrap tarball, default ${XDG_CACHE_HOME:-$HOME/.cache}/resnet-serve).
set -euo pipefail

image=${1:-docker.io/library/node:20-bookworm-slim}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
cache=${STAND_IN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/resnet-serve}
say() { printf '[stand-in] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "debootstrap and chroot need root"
command -v podman >/dev/null || die "podman is not installed"
node_bin=$(command -v node) || die "no node on PATH to copy into the image"
node_version=$("$node_bin" -p 'process.versions.node')
wanted_major=$(sed -E 's/.*:([0-9]+).*/\1/' <<<"$image")
[[ ${node_version%%.*} == "$wanted_major" ]] \
  || die "host node is v$node_version; $image needs Node $wanted_major"
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
[[ -f $npm_dir/package.json ]] || die "cannot find npm's folder (looked at $npm_dir)"

work=$(mktemp -d /var/tmp/stand-in.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
rootfs=$work/rootfs
tarball=$cache/debian-$suite-minbase.tar
mkdir -p "$cache"

if [[ -f $tarball ]]; then
  say "reusing the Debian $suite minbase rootfs cached at $tarball"
  mkdir -p "$rootfs"
  tar -xpf "$tarball" -C "$rootfs"
else
  debootstrap=$(command -v debootstrap || true)
  if [[ -z $debootstrap ]]; then
    # Not installed: fetch the package named by apt's own index, check its SHA-256 and run it
    # from a scratch folder (debootstrap is shell scripts; it needs wget, dpkg-deb and perl).
    say "debootstrap is not installed; fetching its package from $mirror"
    meta=$(apt-cache show --no-all-versions debootstrap 2>/dev/null) \
      || die "apt-cache knows no debootstrap package (run apt-get update, or install debootstrap)"
    file=$(awk '/^Filename:/ {print $2}' <<<"$meta")
    sum=$(awk '/^SHA256:/ {print $2}' <<<"$meta")
    curl -fsSL -o "$work/debootstrap.deb" "$mirror/$file"
    echo "$sum  $work/debootstrap.deb" | sha256sum -c --quiet - || die "debootstrap package checksum mismatch"
    dpkg-deb -x "$work/debootstrap.deb" "$work/debootstrap"
    export DEBOOTSTRAP_DIR=$work/debootstrap/usr/share/debootstrap
    debootstrap=$work/debootstrap/usr/sbin/debootstrap
  fi
  say "debootstrap --variant=minbase $suite from $mirror (about a minute)"
  "$debootstrap" --variant=minbase "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  # Slim it the way debian:bookworm-slim is slimmed.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  tar -cpf "$tarball.partial" -C "$rootfs" . && mv "$tarball.partial" "$tarball"
  say "cached the rootfs at $tarball"
fi

say "adding the host's Node.js v$node_version ($node_bin) and npm ($npm_dir)"
install -D -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules"
cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
chroot "$rootfs" /usr/sbin/groupadd --gid 1000 node
chroot "$rootfs" /usr/sbin/useradd --uid 1000 --gid node --shell /bin/bash --create-home node
chroot "$rootfs" /usr/local/bin/node -e 'process.exit(0)' || die "node does not run in the rootfs (missing libraries?)"

tar -C "$rootfs" -c . | podman import \
  --change "ENV NODE_VERSION=$node_version" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' \
  --change 'LABEL io.github.resnet-serve.stand-in=true' \
  --change "LABEL io.github.resnet-serve.stand-in.description=\"Debian $suite minbase (debootstrap) + host Node.js v$node_version; NOT the official $image\"" \
  - "$image" >/dev/null
say "built $image as a LOCAL STAND-IN (Debian $suite minbase + host Node.js v$node_version), not the official image"
