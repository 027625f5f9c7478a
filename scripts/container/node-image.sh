# shellcheck shell=bash disable=SC2034  # sets variables for the script that sources it
# Sourced by scripts/container-check.sh and scripts/container/build-stand-in-base.sh: the one
# place that reads the base image's name from a Dockerfile and takes it apart, so that a change of
# NODE_IMAGE in the Dockerfile is all it takes to build on (or stand in for) another Node line.

# The default of `ARG NODE_IMAGE=...` in a Dockerfile (the first one, before any FROM).
dockerfile_node_image() {
  local file=$1 value
  value=$(sed -n -E 's/^ARG[[:space:]]+NODE_IMAGE=([^[:space:]]+).*/\1/p' "$file" | head -1)
  [[ -n $value ]] || { printf '%s has no `ARG NODE_IMAGE=<image>` line\n' "$file" >&2; return 1; }
  printf '%s\n' "$value"
}

# Sets NODE_LINE (the version the tag names: a major such as 26, or a full 26.12.1),
# NODE_MAJOR and DEBIAN_SUITE from an official Debian-based node image name such as
# docker.io/library/node:26-trixie-slim. Other forms (alpine, lts, a digest) are refused: a
# stand-in can be built only for what the name says precisely.
parse_node_image() {
  local image=$1 tag
  tag=${image##*/}
  if [[ $tag =~ ^node:(([0-9]+)(\.[0-9]+){0,2})-([a-z]+)(-slim)?$ ]]; then
    NODE_LINE=${BASH_REMATCH[1]}
    NODE_MAJOR=${BASH_REMATCH[2]}
    DEBIAN_SUITE=${BASH_REMATCH[4]}
    return 0
  fi
  printf 'cannot read a Node version and Debian suite from %s (want node:<version>-<suite>[-slim], a Debian-based official tag)\n' "$image" >&2
  return 1
}
