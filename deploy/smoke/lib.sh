# shellcheck shell=bash
# shellcheck disable=SC2034  # TIMING, T0, OK...: read by the scripts that source this file
# Shared by deploy/smoke/container.sh and deploy/smoke/systemd.sh (sourced,
# not run). Starts dockerd when it is not running (and stops it again at the
# end), builds the Debian bookworm stand-in for python:3.11-slim, runs the
# project's RunPod simulator and a signed-webhook receiver on 127.0.0.1, and
# cleans all of that up on exit, failure or Ctrl-C.
#
# Knobs (environment):
#   SIM_MODULE        simulator to run (default "daemon.simulator", API v1)
#   SIM_SCENARIO      its scenario (default "demo")
#   SIM_API_VERSION   written as the config's `api: {version: ...}`, and picks
#                     the simulator's base URL of that version (default: none,
#                     the daemon's default and the URL the simulator prints first)
#   PYTHON_IMAGE      base image for the build; default: the stand-in below
#   SMOKE_KEEP_BASE=1 keep the stand-in base image for the next run
#   SMOKE_KEEP=1      keep everything (containers, images, dockerd) for debugging
#   PYTHON            host Python with the project installed (default .venv/bin/python)

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

SIM_MODULE="${SIM_MODULE:-daemon.simulator}"
SIM_SCENARIO="${SIM_SCENARIO:-demo}"
SIM_API_VERSION="${SIM_API_VERSION:-}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
STANDIN_IMAGE="runpod-budget-smoke-base:bookworm"
SMOKE_TAG="${SMOKE_TAG:-smoke-$$}"
WORK="$(mktemp -d /tmp/runpod-budget-smoke.XXXXXX)"
chmod 0755 "$WORK"

declare -a CLEANUP=()      # commands run in reverse order on exit

declare -A TIMING=()
STARTED_DOCKERD=""
T0=$(date +%s.%N)

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
at_exit() { CLEANUP+=("$*"); }

_cleanup() {
  local rc=$?
  set +e
  if [[ "${SMOKE_KEEP:-}" == 1 ]]; then
    log "SMOKE_KEEP=1: leaving containers, images, dockerd and $WORK in place"
    return $rc
  fi
  local i
  for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do
    eval "${CLEANUP[$i]}" >/dev/null 2>&1
  done
  rm -rf "$WORK"
  return $rc
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

[[ -x "$PYTHON" ]] || die "$PYTHON missing: run 'bash scripts/test' or 'python3 -m venv .venv && .venv/bin/pip install -e .[dev]' first"
[[ $(id -u) == 0 ]] || die "run as root (dockerd, debootstrap)"

# ------------------------------------------------------------------ dockerd

ensure_dockerd() {
  command -v docker >/dev/null && command -v dockerd >/dev/null \
    || die "docker missing: apt-get update && apt-get install -y docker.io debootstrap"
  if docker info >/dev/null 2>&1; then
    return
  fi
  log "starting dockerd"
  dockerd >"$WORK/dockerd.log" 2>&1 &
  STARTED_DOCKERD=$!
  at_exit "_stop_dockerd"
  local _
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 0.5
  done
  tail -n 20 "$WORK/dockerd.log" >&2
  die "dockerd did not come up"
}

_stop_dockerd() {
  [[ -n "$STARTED_DOCKERD" ]] || return 0
  kill "$STARTED_DOCKERD" 2>/dev/null
  local _
  for _ in $(seq 1 40); do
    kill -0 "$STARTED_DOCKERD" 2>/dev/null || break
    sleep 0.5
  done
  # dockerd starts containerd as its child; it normally exits with it.
}

# ------------------------------------------------------------------ stand-in base

# python:3.11-slim cannot be pulled where no image registry is reachable:
# build the same thing (Debian bookworm + Python 3.11 with venv and pip) from
# Debian's packages, with the host's extra CA certificates so that pip inside
# the build trusts the same TLS proxy as the host.
build_standin_base() {
  if [[ -n "${PYTHON_IMAGE:-}" ]]; then
    TIMING[base]="given"
    return
  fi
  PYTHON_IMAGE="$STANDIN_IMAGE"
  if docker image inspect "$STANDIN_IMAGE" >/dev/null 2>&1; then
    TIMING[base]="cached"
  else
    command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install -y debootstrap"
    local t rootfs="$WORK/rootfs"
    t=$(date +%s.%N)
    log "debootstrap bookworm (a few minutes)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
      bookworm "$rootfs" >"$WORK/debootstrap.log" 2>&1 \
      || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    fi
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
    ln -sf python3 "$rootfs/usr/bin/python"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["python3"]' - "$STANDIN_IMAGE" >/dev/null
    rm -rf "$rootfs"
    TIMING[base]="$(elapsed "$t")s"
  fi
  [[ "${SMOKE_KEEP_BASE:-}" == 1 ]] || at_exit "docker rmi -f $STANDIN_IMAGE"
}

# pip inside `docker build` needs the host's index (if one is configured) and
# a CA bundle that trusts the host's TLS proxy; the Dockerfile takes both as
# build args. The stand-in base carries the host's CAs in its system bundle.
pip_build_args() {
  local index extra
  index="${PIP_INDEX_URL:-$("$PYTHON" -m pip config get global.index-url 2>/dev/null || true)}"
  extra="${PIP_EXTRA_INDEX_URL:-}"
  [[ -z "$index" ]] || printf -- '--build-arg\0PIP_INDEX_URL=%s\0' "$index"
  # file:// indexes of the host are not inside the build: pass http(s) ones only
  [[ -z "$extra" || "$extra" == file:* ]] || printf -- '--build-arg\0PIP_EXTRA_INDEX_URL=%s\0' "$extra"
  printf -- '--build-arg\0PIP_CERT=/etc/ssl/certs/ca-certificates.crt\0'
}

# ------------------------------------------------------------------ simulator + receiver

# Starts the RunPod simulator and the webhook receiver on 127.0.0.1 and sets
# SIM_URL, SIM_GRAPHQL_URL (empty if the simulator has none), SIM_KEY,
# HOOK_URL, HOOK_SECRET and HOOK_LOG.
start_fakes() {
  SIM_KEY="sim-smoke-$$"
  "$PYTHON" -m "$SIM_MODULE" --port 0 --scenario "$SIM_SCENARIO" --api-key "$SIM_KEY" \
    >"$WORK/sim.out" 2>"$WORK/sim.err" &
  local sim_pid=$!
  at_exit "kill $sim_pid"
  local _
  for _ in $(seq 1 40); do
    grep -q '^RUNPOD_API_BASE_URL=' "$WORK/sim.out" 2>/dev/null && break
    sleep 0.25
  done
  SIM_URL="$(sed -n 's/^RUNPOD_API_BASE_URL=//p' "$WORK/sim.out")"
  [[ -n "$SIM_URL" ]] || { cat "$WORK/sim.err" >&2; die "simulator did not start"; }
  # A simulator serving several API versions prints the others' URLs as
  # "# api.version: V -> RUNPOD_API_BASE_URL=URL".
  local other
  other="$(sed -n "s/^# api.version: ${SIM_API_VERSION:-none} -> RUNPOD_API_BASE_URL=//p" "$WORK/sim.out")"
  [[ -z "$other" ]] || SIM_URL="$other"
  SIM_GRAPHQL_URL="$(sed -n 's/^RUNPOD_GRAPHQL_URL=//p' "$WORK/sim.out")"

  HOOK_SECRET="whsec_$(printf 'smoke-secret-%s' "$$" | base64 | tr -d '\n=')"
  HOOK_LOG="$WORK/hook.jsonl"
  "$PYTHON" "$ROOT/deploy/smoke/receiver.py" --secret "$HOOK_SECRET" --log "$HOOK_LOG" \
    >"$WORK/hook.out" 2>"$WORK/hook.err" &
  local hook_pid=$!
  at_exit "kill $hook_pid"
  for _ in $(seq 1 40); do
    [[ -s "$WORK/hook.out" ]] && break
    sleep 0.25
  done
  HOOK_URL="$(head -n 1 "$WORK/hook.out")"
  [[ -n "$HOOK_URL" ]] || { cat "$WORK/hook.err" >&2; die "receiver did not start"; }
  log "simulator $SIM_URL, webhook receiver $HOOK_URL"
}

# The daemon's config for the smoke runs: one webhook notifier (signed), an
# account budget the demo scenario crosses at once, a short poll interval.
# The signing secret comes in as ${WEBHOOK_SECRET} (a file or a credential).
write_config() {  # write_config FILE LISTEN
  {
    echo "version: 1"
    echo "timezone: UTC"
    echo "poll_interval: ${SMOKE_POLL:-20s}"
    if [[ -n "$SIM_API_VERSION" ]]; then
      echo "api:"
      echo "  version: $SIM_API_VERSION"
    fi
    echo "notifiers:"
    echo "  hook:"
    echo "    type: webhook"
    echo "    url: $HOOK_URL"
    echo "    secret: \${WEBHOOK_SECRET}"
    echo "defaults:"
    echo "  notify: [hook]"
    echo "  thresholds: [1]"
    echo "budgets:"
    echo "  - name: smoke-account-daily"
    echo "    window: day"
    echo "    limit: 1"
    echo "http:"
    echo "  listen: \"$2\""
  } >"$1"
}

# Number of signed, verified alerts the receiver got, and of distinct ids.
hook_count() { [[ -f "$HOOK_LOG" ]] && wc -l <"$HOOK_LOG" || echo 0; }
hook_distinct() {
  [[ -f "$HOOK_LOG" ]] || { echo 0; return; }
  "$PYTHON" -c 'import json,sys; print(len({json.loads(l)["id"] for l in open(sys.argv[1])}))' "$HOOK_LOG"
}

# The legacy builder leaves each multi-stage build's earlier stages behind as
# untagged images: note the ones there before, remove the new ones at exit.
forget_build_leftovers() {
  docker images -q -f dangling=true | sort -u >"$WORK/dangling.before"
  at_exit "comm -13 $WORK/dangling.before <(docker images -q -f dangling=true | sort -u) | xargs -r docker rmi -f"
}

wait_until() {  # wait_until SECONDS CMD...: poll CMD every 0.25 s
  local limit=$1; shift
  local end=$(( $(date +%s) + limit ))
  while (( $(date +%s) < end )); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  return 1
}
