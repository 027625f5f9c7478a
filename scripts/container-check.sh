#!/usr/bin/env bash
# Builds the container image with `podman build --isolation chroot`, then runs the image's own
# entry point (ENTRYPOINT + CMD, as its USER, in its WORKDIR, with its ENV) in the image's root
# filesystem and checks that it starts, answers /v2/health/ready, serves the page and the API's
# contract, classifies a photo (samples/chelsea.png: a cat), and on SIGTERM turns unready and
# exits 0.
#
# It does not use `podman run` (it cannot run on the machines this project is developed on):
# the image is mounted read-only with `podman image mount` and entered with unshare(1) in new
# mount and PID namespaces, so tini is PID 1 as in a pod; /tmp and an empty model repository are
# tmpfs mounts, as emptyDirs would be in Kubernetes (an image whose /models already holds models,
# such as the baked-default target, keeps its own, read-only); the root filesystem stays
# read-only, as with readOnlyRootFilesystem: true. The network namespace is the host's: the
# server listens on 127.0.0.1 only.
#
# The base image is the Dockerfile's NODE_IMAGE, read from it (`--plan` prints it). When it
# is neither present nor pullable (no Docker Hub), a LOCAL STAND-IN is built under that name by
# scripts/container/build-stand-in-base.sh: Debian minbase of the tag's suite (debootstrap) + the
# official Node binary of the tag's line and npm, both from the npm registry. The script says so.
#
# Needs: root; podman (apt-get install podman); util-linux's unshare, mount, nsenter; curl; a
#        host node (reads the image's configuration); network to the npm registry and a Debian
#        mirror (the image's npm ci and apt-get install tini). For the stand-in base also
#        debootstrap (apt-get install debootstrap) and npm.
#
# Usage: scripts/container-check.sh [options]        (as root: mounts and namespaces need it)
#   --target NAME      Dockerfile target to build and run (default: runtime)
#   --image NAME       tag for the built image (default: localhost/resnet-serve:check)
#   --model DIR        serve this model folder (model.onnx [+ labels.txt, config.json]) mounted
#                      read-only at /models/<basename>; default: the image's own /models, or an
#                      empty writable one into which the server copies its default model
#                      (resnet20-cifar10), as it does on an emptyDir
#   --model-config J   config.json text written beside the --model folder's files
#   --image-file F     photo to classify (default: samples/chelsea.png)
#   --expect-label L   the top label the photo must get (default: cat, for samples/chelsea.png on
#                      the default model; otherwise none); '' checks only for a 200
#   --port N           port to listen on (default: a free one)
#   --skip-build       run an image built before
#   --build-only       build and inspect the image, do not run it
#   --no-pull          never try to pull the base image
#   --startup-timeout S  seconds to wait for readiness (default: 600)
#   --plan             print the base image, target and tag it would use, and exit
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/container/node-image.sh
source "$repo/scripts/container/node-image.sh"
target=runtime
image=localhost/resnet-serve:check
model_dir=
model_config=
default_photo=$repo/samples/chelsea.png
photo=$default_photo
expect_label=auto
port=
skip_build=false
build_only=false
plan_only=false
pull=true
startup_timeout=600
shutdown_delay_ms=2000
shutdown_timeout_ms=10000

while [[ $# -gt 0 ]]; do
  case $1 in
    --target) target=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --model) model_dir=$(cd "$2" && pwd); shift 2 ;;
    --model-config) model_config=$2; shift 2 ;;
    --image-file) photo=$2; shift 2 ;;
    --expect-label) expect_label=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --skip-build) skip_build=true; shift ;;
    --build-only) build_only=true; shift ;;
    --no-pull) pull=false; shift ;;
    --startup-timeout) startup_timeout=$2; shift 2 ;;
    --plan) plan_only=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

say() { printf '[container-check] %s\n' "$*"; }
fail() { printf '[container-check] FAIL: %s\n' "$*" >&2; exit 1; }
pass() { printf '[container-check] ok: %s\n' "$*"; }

# The base image is whatever the Dockerfile builds on: never a second copy of its name here.
base_image=$(dockerfile_node_image "$repo/Dockerfile") || exit 1
if $plan_only; then
  printf 'dockerfile=%s\nbase_image=%s\ntarget=%s\nimage=%s\n' "$repo/Dockerfile" "$base_image" "$target" "$image"
  exit 0
fi

# --- 0. what this needs, all said at once ------------------------------------------------------
missing=()
[[ $(id -u) -eq 0 ]] || missing+=("root: podman image mount, mount(8) and unshare(1) need it (sudo $0)")
command -v podman >/dev/null || missing+=("podman (builds with --isolation chroot; podman run is not used): apt-get install podman")
for tool in unshare mount nsenter; do
  command -v "$tool" >/dev/null || missing+=("$tool (util-linux): apt-get install util-linux mount")
done
command -v curl >/dev/null || missing+=("curl: apt-get install curl")
command -v node >/dev/null || missing+=("node on the host (reads the image's configuration): install Node.js")
[[ -f $photo ]] || missing+=("the photo to classify: $photo does not exist (--image-file)")
if ((${#missing[@]})); then
  say "cannot check the image; missing:"
  for m in "${missing[@]}"; do say "  - $m"; done
  say "also needed: network to the npm registry and a Debian mirror (the image's npm ci and apt-get);"
  say "and, when $base_image cannot be pulled (no Docker Hub), debootstrap (apt-get install debootstrap)"
  say "and npm for the local stand-in base (scripts/container/build-stand-in-base.sh)."
  fail "prerequisites missing (see above)"
fi

# --- 1. base image -------------------------------------------------------------------------
label_of() { podman image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null; }
is_stand_in() { [[ $(label_of "$base_image" io.github.resnet-serve.stand-in) == true ]]; }
if ! $skip_build; then
  work_pull_err=$(mktemp)
  if podman image exists "$base_image"; then
    :
  elif $pull && timeout 120 podman pull --quiet "$base_image" >/dev/null 2>"$work_pull_err"; then
    say "pulled $base_image"
  else
    $pull && say "cannot pull $base_image: $(tail -1 "$work_pull_err")"
    say "building a LOCAL STAND-IN under the name $base_image"
    "$repo/scripts/container/build-stand-in-base.sh" "$base_image" || fail "could not build the stand-in for $base_image (above)"
  fi
  base_size=$(podman image inspect --format '{{.Size}}' "$base_image" | awk '{printf "%.0f MB", $1/1e6}')
  if is_stand_in; then
    say "NOTE: the base image is a LOCAL STAND-IN, not the official image: $(label_of "$base_image" io.github.resnet-serve.stand-in.description) ($base_size)"
  else
    say "base image: $base_image (official, $base_size)"
  fi
  rm -f "$work_pull_err"
fi

# --- 2. build ------------------------------------------------------------------------------
if ! $skip_build; then
  build_args=(--isolation chroot --format docker --target "$target" --tag "$image" --pull=never --layers
    --build-arg "REVISION=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
    --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    --build-arg "VERSION=$(node -p "require('$repo/package.json').version")")
  # Behind a TLS-intercepting proxy npm needs the proxy's CA: lend the host's bundle to the RUN
  # steps through a volume (not copied into any layer) and NODE_EXTRA_CA_CERTS.
  if [[ -n ${NODE_EXTRA_CA_CERTS:-} && -f $NODE_EXTRA_CA_CERTS ]]; then
    build_args+=(--volume "$NODE_EXTRA_CA_CERTS:/run/build-ca.crt:ro" --build-arg NODE_EXTRA_CA_CERTS=/run/build-ca.crt)
  fi
  say "podman build ${build_args[*]} $repo"
  start=$(date +%s)
  podman build "${build_args[@]}" -f "$repo/Dockerfile" "$repo" || fail "podman build failed"
  say "built $image (target $target) in $(( $(date +%s) - start )) s"
fi

# --- 3. image configuration -----------------------------------------------------------------
podman image exists "$image" || fail "no image $image (build it first)"
config_json=$(podman image inspect --format '{{json .Config}}' "$image")
field() { node -e 'const c = JSON.parse(process.argv[1]); const v = c[process.argv[2]]; process.stdout.write(v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v));' "$config_json" "$1"; }
user=$(field User)
workdir=$(field WorkingDir)
[[ $user =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || fail "image USER is '$user': want a numeric non-root uid (runAsNonRoot checks it)"
pass "USER $user (numeric, non-root)"
[[ $(field ExposedPorts) == *'"8080/tcp"'* ]] || fail "image does not EXPOSE 8080/tcp"
pass "EXPOSE 8080/tcp"
[[ $(field Entrypoint) == *tini* ]] || fail "ENTRYPOINT is $(field Entrypoint): want tini as PID 1"
pass "ENTRYPOINT $(field Entrypoint), CMD $(field Cmd), WORKDIR $workdir"
labels=$(field Labels)
for label in title version revision created licenses source; do
  [[ $labels == *"\"org.opencontainers.image.$label\""* ]] || fail "missing OCI label org.opencontainers.image.$label"
done
pass "OCI labels present"
healthcheck=$(podman image inspect --format '{{json .HealthCheck}}' "$image")
if [[ $healthcheck == *health/ready* ]]; then
  pass "HEALTHCHECK on /v2/health/ready"
else
  say "note: no HEALTHCHECK in the image configuration ($healthcheck; the OCI image format drops it)"
fi
say "image size: $(podman image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
$build_only && { say "PASS (build only)"; exit 0; }

# --- 4. run the entry point in the image's root filesystem ----------------------------------
uid=${user%%:*}
gid=${user#*:}; [[ $gid == "$user" ]] && gid=$uid
if [[ -z $port ]]; then
  port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')
fi
work=$(mktemp -d /var/tmp/container-check.XXXXXX)
rootfs=$(podman image mount "$image")
runner_pid=
init_pid=
# Our child stays a zombie until waited for, and kill -0 succeeds on zombies: look at its state.
alive() { local state; state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [[ -n $state && $state != Z ]]; }
cleanup() {
  if [[ -n $runner_pid ]] && alive "$runner_pid"; then
    # Killing PID 1 of the namespace kills everything in it; unshare then reaps it and exits.
    [[ -n $init_pid ]] && kill -KILL "$init_pid" 2>/dev/null
    for _ in $(seq 50); do alive "$runner_pid" || break; sleep 0.1; done
    alive "$runner_pid" && kill -KILL "$runner_pid" 2>/dev/null
    wait "$runner_pid" 2>/dev/null || true
  fi
  podman image unmount "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The image's environment, then what a Deployment would set (see deploy/base/server.env).
mapfile -d '' image_env < <(node -e 'for (const e of JSON.parse(process.argv[1]).Env ?? []) process.stdout.write(e + "\0")' "$config_json")
mapfile -d '' entry < <(node -e 'const c = JSON.parse(process.argv[1]); for (const a of [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])]) process.stdout.write(a + "\0")' "$config_json")
run_env=("${image_env[@]}" "HOST=127.0.0.1" "PORT=$port" "LOG_LEVEL=info"
  "SHUTDOWN_DELAY_MS=$shutdown_delay_ms" "SHUTDOWN_TIMEOUT_MS=$shutdown_timeout_ms")
model_name=
if [[ -n $model_dir ]]; then
  model_name=$(basename "$model_dir")
  run_env+=("SEED_DEFAULT_MODEL=false")
fi
# /models: the --model folder on a tmpfs; else the image's own when it holds models (baked,
# baked-default: served read-only from the image, as a pod without a volume there would); else an
# empty tmpfs owned by the image user, as an emptyDir, which the server seeds with its default model.
if [[ -z $model_dir && -n $(ls -A "$rootfs/models" 2>/dev/null) ]]; then
  models_mount=image
  models_note="the image's own /models ($(ls "$rootfs/models" | tr '\n' ' ' | sed 's/ $//'), read-only)"
else
  models_mount=tmpfs
  models_note="a tmpfs at /models${model_dir:+ holding $model_name}"
fi

# Drop to the image's user the way a restricted pod does: no capabilities, no new privileges,
# no supplementary groups. setpriv comes from the image (util-linux); else unshare's own switch.
if [[ -x $rootfs/usr/bin/setpriv ]]; then
  as_user=(/usr/bin/setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all --)
  user_note="setpriv: uid $uid, gid $gid, no capabilities, no_new_privs"
else
  as_user=()
  user_note="unshare --setuid $uid --setgid $gid"
fi

cat >"$work/enter.sh" <<'EOF'
#!/usr/bin/env bash
# Runs as PID 1 of new mount and PID namespaces, then execs into the image (so tini is PID 1).
set -euo pipefail
rootfs=$1 newroot=$2 uid=$3 gid=$4 models_mount=$5 model_dir=$6 model_config=$7 workdir=$8; shift 8
mount --bind "$rootfs" "$newroot"
mount -o remount,bind,ro "$newroot"
mount -t proc -o nosuid,nodev,noexec proc "$newroot/proc"
mount --rbind /dev "$newroot/dev"
mount --rbind -o ro /sys "$newroot/sys" 2>/dev/null || mount --bind /sys "$newroot/sys"
mount -t tmpfs -o nosuid,nodev,size=256m,mode=1777 tmpfs "$newroot/tmp"
if [[ $models_mount == tmpfs ]]; then
  mount -t tmpfs -o "nosuid,nodev,size=2g,mode=0755,uid=$uid,gid=$gid" tmpfs "$newroot/models"
fi
if [[ -n $model_dir ]]; then
  name=$(basename "$model_dir")
  mkdir "$newroot/models/$name"
  for f in "$model_dir"/*; do
    touch "$newroot/models/$name/$(basename "$f")"
    mount --bind -o ro "$f" "$newroot/models/$name/$(basename "$f")"
  done
  [[ -n $model_config ]] && printf '%s\n' "$model_config" >"$newroot/models/$name/config.json"
  chown -R "$uid:$gid" "$newroot/models/$name" 2>/dev/null || true
fi
if [[ $# -gt 0 && $1 == /usr/bin/setpriv ]]; then
  exec unshare --root="$newroot" --wd="$workdir" -- "$@"
fi
exec unshare --root="$newroot" --wd="$workdir" --setuid "$uid" --setgid "$gid" -- "$@"
EOF
chmod +x "$work/enter.sh"
mkdir -p "$work/root"

say "starting ${entry[*]} in $rootfs (read-only) as $user_note, port $port, models: $models_note"
log=$work/server.log
env -i "${run_env[@]}" unshare --mount --pid --fork --kill-child --propagation private \
  "$work/enter.sh" "$rootfs" "$work/root" "$uid" "$gid" "$models_mount" "$model_dir" "$model_config" "${workdir:-/}" \
  "${as_user[@]}" "${entry[@]}" >"$log" 2>&1 &
runner_pid=$!
# The server's log without the per-request lines of the readiness polling.
show_log() {
  say "server log (last 40 lines, request lines left out):"
  grep -v -e '"msg":"incoming request"' -e '"msg":"request completed"' "$log" | tail -40 | sed 's/^/    /'
}

# PID 1 of the new PID namespace, as seen from here: the only child of unshare --fork.
for _ in $(seq 50); do
  init_pid=$(cat "/proc/$runner_pid/task/$runner_pid/children" 2>/dev/null | awk '{print $1}')
  [[ -n $init_pid ]] && break
  sleep 0.1
done
[[ -n $init_pid ]] || { show_log; fail "the entry point did not start"; }

url=http://127.0.0.1:$port
# From the entry point's start (launched just above) to the first 200, polled every 0.2 s.
start_ms=$(( $(date +%s%N) / 1000000 ))
ready=false
while (( $(date +%s%N) / 1000000 - start_ms < startup_timeout * 1000 )); do
  alive "$runner_pid" || { show_log; fail "the server exited before it was ready"; }
  if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/v2/health/ready") == 200 ]]; then
    ready=true; break
  fi
  sleep 0.2
done
$ready || { show_log; fail "not ready after ${startup_timeout} s"; }
pass "GET /v2/health/ready -> 200 after $(( $(date +%s%N) / 1000000 - start_ms )) ms"

# Who and where PID 1 and its children run.
pid1_comm=$(cat "/proc/$init_pid/comm")
node_pid=$(cat "/proc/$init_pid/task/$init_pid/children" 2>/dev/null | awk '{print $1}')
[[ -n $node_pid ]] || node_pid=$init_pid
node_uid=$(awk '/^Uid:/ {print $2}' "/proc/$node_pid/status")
node_caps=$(awk '/^CapEff:/ {print $2}' "/proc/$node_pid/status")
ns_pid=$(awk '/^NSpid:/ {print $NF}' "/proc/$init_pid/status")
[[ $ns_pid == 1 ]] || fail "the entry point is PID $ns_pid in its namespace, want 1"
pass "PID 1 is $pid1_comm; node runs as uid $node_uid with CapEff $node_caps"
[[ $node_uid == "$uid" ]] || fail "node runs as uid $node_uid, want $uid"
[[ $node_caps == 0000000000000000 ]] || fail "node has capabilities $node_caps, want none"
# Even root, inside the server's mount namespace and root, cannot write to the image.
if nsenter --target "$node_pid" --mount --root -- /usr/bin/touch /app/.write-test 2>"$work/touch.err"; then
  fail "the image's root filesystem is writable"
fi
grep -q 'Read-only file system' "$work/touch.err" || fail "writing to /app failed oddly: $(cat "$work/touch.err")"
pass "root filesystem is read-only for the server"

for path in /v2/health/live /livez /readyz /v2; do
  code=$(curl -s -o "$work/body" -w '%{http_code}' --max-time 5 "$url$path")
  [[ $code == 200 ]] || { show_log; fail "GET $path -> $code"; }
  pass "GET $path -> 200 $(head -c 160 "$work/body")"
done
# The page (dist/web) for a browser, and the contract wherever the image's openapi.yaml says it
# is served: both are files the image must carry beside the compiled server.
read -r code type < <(curl -s -o "$work/body" -w '%{http_code} %{content_type}\n' --max-time 5 -H 'Accept: text/html' "$url/")
[[ $code == 200 && $type == text/html* ]] || { show_log; fail "GET / (Accept: text/html) -> $code $type: want the page (is dist/web in the image?)"; }
pass "GET / (Accept: text/html) -> 200 $type, $(wc -c <"$work/body") bytes"
for path in /openapi.yaml /openapi.json; do
  grep -q "^  $path:" "$rootfs$workdir/openapi.yaml" 2>/dev/null || continue
  code=$(curl -s -o "$work/body" -w '%{http_code}' --max-time 5 "$url$path")
  [[ $code == 200 ]] || { show_log; fail "GET $path -> $code (documented in the image's openapi.yaml)"; }
  pass "GET $path -> 200, $(wc -c <"$work/body") bytes"
done
if [[ -f $rootfs$workdir/dist/src/http/routes/docs.js ]]; then
  read -r code type < <(curl -s -L -o "$work/body" -w '%{http_code} %{content_type}\n' --max-time 5 "$url/docs")
  [[ $code == 200 && $type == text/html* ]] || { show_log; fail "GET /docs -> $code $type: want Swagger UI's page"; }
  pass "GET /docs -> 200 $type (Swagger UI)"
fi
if [[ -z $model_name ]]; then
  code=$(curl -s -o "$work/body" -w '%{http_code}' --max-time 5 "$url/v1/models")
  [[ $code == 200 ]] || { show_log; fail "GET /v1/models -> $code"; }
  model_name=$(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.stdout.write(String(j.models?.[0] ?? ""))' "$work/body")
  [[ -n $model_name ]] || { show_log; fail "GET /v1/models lists no model: $(head -c 200 "$work/body")"; }
  pass "GET /v1/models -> 200 $(head -c 160 "$work/body")"
fi
code=$(curl -s -o "$work/body" -w '%{http_code}' --max-time 5 "$url/v2/models/$model_name/ready")
[[ $code == 200 ]] || { show_log; fail "GET /v2/models/$model_name/ready -> $code"; }
pass "GET /v2/models/$model_name/ready -> 200"

# The default photo on the default model is a known answer: Chelsea is a cat.
if [[ $expect_label == auto ]]; then
  expect_label=
  [[ $photo == "$default_photo" && $model_name == resnet20-cifar10 ]] && expect_label="cat"
fi
case ${photo,,} in
  *.jpg|*.jpeg) photo_type=image/jpeg ;;
  *) photo_type=image/png ;;
esac
code=$(curl -s -o "$work/body" -w '%{http_code}' --max-time 60 -H "Content-Type: $photo_type" \
  --data-binary "@$photo" "$url/v1/models/$model_name:predict?top_k=3")
[[ $code == 200 ]] || { show_log; fail "POST /v1/models/$model_name:predict -> $code $(head -c 300 "$work/body")"; }
top=$(node -e 'const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).predictions?.[0]; process.stdout.write(p ? `${p.label} ${p.score.toFixed(4)}` : "")' "$work/body")
[[ -n $top ]] || fail "POST /v1/models/$model_name:predict -> 200 without a prediction: $(head -c 300 "$work/body")"
if [[ -n $expect_label && ${top%% *} != "$expect_label" ]]; then
  fail "POST /v1/models/$model_name:predict ($(basename "$photo")) -> top label '${top%% *}', want '$expect_label': $(head -c 300 "$work/body")"
fi
pass "POST /v1/models/$model_name:predict ($(basename "$photo")) -> 200, top-1 $top${expect_label:+ (want $expect_label)}"

# --- 5. SIGTERM: unready at once, exit 0 within SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS -------
say "SIGTERM to PID 1 ($pid1_comm)"
term_at=$(date +%s%N)
kill -TERM "$init_pid"
saw_unready=false
while alive "$runner_pid"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url/v2/health/ready" || true)
  if [[ $code == 503 ]]; then saw_unready=true; break; fi
  (( ($(date +%s%N) - term_at) / 1000000 < shutdown_delay_ms )) || break
  sleep 0.05
done
deadline_ms=$(( shutdown_delay_ms + shutdown_timeout_ms + 5000 ))
rc=
while (( ($(date +%s%N) - term_at) / 1000000 < deadline_ms )); do
  if ! alive "$runner_pid"; then
    set +e; wait "$runner_pid"; rc=$?; set -e
    runner_pid=
    break
  fi
  sleep 0.1
done
elapsed_ms=$(( ($(date +%s%N) - term_at) / 1000000 ))
[[ -n $rc ]] || { show_log; fail "still running ${deadline_ms} ms after SIGTERM"; }
$saw_unready || { show_log; fail "/v2/health/ready never answered 503 during the ${shutdown_delay_ms} ms shutdown delay"; }
pass "/v2/health/ready -> 503 during the shutdown delay"
[[ $rc == 0 ]] || { show_log; fail "exit status $rc after SIGTERM, want 0"; }
pass "exited 0, ${elapsed_ms} ms after SIGTERM (delay ${shutdown_delay_ms} ms + drain budget ${shutdown_timeout_ms} ms)"
if is_stand_in; then
  say "PASS (built on a LOCAL STAND-IN base image, not the official $base_image)"
else
  say "PASS"
fi
