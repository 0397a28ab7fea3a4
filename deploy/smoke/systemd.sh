#!/usr/bin/env bash
# systemd smoke test: boots a real systemd (Debian bookworm, systemd 252) as
# PID 1 in a container, installs runpod-budget by running deploy/README.md's
# install block as it is, starts deploy/systemd/runpod-budget.service as
# shipped (only WatchdogSec shortened in a drop-in) against the project's
# RunPod simulator and a signed-webhook receiver on 127.0.0.1, and checks:
# Type=notify start, hardening in force, a signed alert (credentials arrived
# through LoadCredential=), watchdog restart of a SIGSTOPped daemon, reload,
# clean stop, and the failure a missing credential gives.
# Prints one verdict line; exits 0 only if every check passed.
#
#   bash deploy/smoke/systemd.sh          (root, dockerd + debootstrap installed)
#
# Takes a few minutes. Knobs: see deploy/smoke/lib.sh.

# ---- the simulator the daemon talks to (switch to API v2 here) ----
SIM_MODULE="${SIM_MODULE:-daemon.simulator}"
SIM_SCENARIO="${SIM_SCENARIO:-demo}"
SIM_API_VERSION="${SIM_API_VERSION:-}"    # e.g. v1; empty: the daemon's default

# shellcheck source=deploy/smoke/lib.sh
source "$(dirname "$0")/lib.sh"

IMAGE="runpod-budget-systemd:$SMOKE_TAG"
NAME="runpod-budget-systemd-$SMOKE_TAG"
PORT="${SMOKE_PORT:-19465}"
SMOKE_POLL=5s                 # with WatchdogSec=20s below
declare -a OK=() BAD=()
# Set-up steps die on failure; checks only record theirs (see set +e below).
check() {
  local label=$1; shift
  if "$@"; then OK+=("$label"); else BAD+=("$label"); log "check failed: $label"; fi
}
in_box() { docker exec "$NAME" "$@"; }
sctl() { docker exec "$NAME" systemctl "$@"; }
prop() { docker exec "$NAME" systemctl show -p "$1" --value runpod-budget; }

ensure_dockerd
export DOCKER_BUILDKIT=0
build_standin_base
log "base: ${TIMING[base]}"

# systemd on top of the stand-in base, nothing of the project yet.
t=$(date +%s.%N)
mkdir -p "$WORK/ctx"
cat >"$WORK/ctx/Dockerfile" <<DOCKERFILE
FROM $PYTHON_IMAGE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      systemd systemd-sysv dbus \
 && rm -rf /var/lib/apt/lists/* \
 && systemctl mask getty@.service console-getty.service systemd-logind.service \
      systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
STOPSIGNAL SIGRTMIN+3
CMD ["/bin/sh", "-c", "mount --make-rshared / && exec /sbin/init"]
DOCKERFILE
forget_build_leftovers
at_exit "docker rmi -f $IMAGE"
docker build --network host -q -t "$IMAGE" "$WORK/ctx" >"$WORK/build.log" 2>&1 \
  || { tail -n 30 "$WORK/build.log" >&2; die "systemd image build failed"; }
TIMING[build]="$(elapsed "$t")s"

# --privileged needs CAP_SYS_RESOURCE, which dockerd may lack; this is enough
# for systemd. Host network: the simulator and receiver are on 127.0.0.1.
at_exit "docker rm -f $NAME"
docker run -d --name "$NAME" --network host \
  --cap-add ALL --cap-drop SYS_RESOURCE \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --security-opt systempaths=unconfined \
  --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  "$IMAGE" >/dev/null
wait_until 60 sh -c "docker exec $NAME systemctl is-system-running | grep -Eq 'running|degraded'" \
  || { docker logs "$NAME" 2>&1 | tail -n 20 >&2; die "systemd did not boot"; }
log "systemd $(in_box systemctl --version | head -n 1 | awk '{print $2}') is up"

# deploy/README.md's install block, line by line, in a copy of the checkout.
t=$(date +%s.%N)
in_box mkdir -p /root/runpod-budget
tar -C "$ROOT" --exclude=__pycache__ -c pyproject.toml README.md daemon config deploy \
  | docker exec -i "$NAME" tar -C /root/runpod-budget -x
sed -n '/<!-- install:begin/,/<!-- install:end/p' deploy/README.md | sed '/^```/d;/^<!--/d' \
  >"$WORK/install.sh"
[[ -s "$WORK/install.sh" ]] || die "no install block in deploy/README.md"
docker exec -i -w /root/runpod-budget -e PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
  -e DEBIAN_FRONTEND=noninteractive "$NAME" bash -euxo pipefail <"$WORK/install.sh" \
  >"$WORK/install.log" 2>&1 || { tail -n 30 "$WORK/install.log" >&2; die "README install block failed"; }
TIMING[install]="$(elapsed "$t")s"

start_fakes
write_config "$WORK/budgets.yaml" "127.0.0.1:$PORT"
docker cp "$WORK/budgets.yaml" "$NAME:/etc/runpod-budget/budgets.yaml"
in_box sh -c "umask 077; printf %s '$SIM_KEY' > /etc/runpod-budget/credentials/RUNPOD_API_KEY;
  printf %s 'https://hooks.slack.com/services/T0/B0/unused' > /etc/runpod-budget/credentials/SLACK_WEBHOOK_URL;
  printf %s '$HOOK_SECRET' > /etc/runpod-budget/credentials/WEBHOOK_SECRET"
# The simulator's URL, and a watchdog short enough to see it fire.
in_box mkdir -p /etc/systemd/system/runpod-budget.service.d
printf '[Service]\nEnvironment=RUNPOD_API_BASE_URL=%s RUNPOD_GRAPHQL_URL=%s\nWatchdogSec=20s\n' \
  "$SIM_URL" "$SIM_GRAPHQL_URL" \
  | docker exec -i "$NAME" tee /etc/systemd/system/runpod-budget.service.d/smoke.conf >/dev/null

# From here on a failure is a failed check, not the end of the run.
set +e

# -- notify start: `systemctl start` returns after READY=1
t=$(date +%s.%N)
sctl daemon-reload
sctl enable --now runpod-budget >/dev/null 2>&1 || true
TIMING[start]="$(elapsed "$t")s"
check "notify start" test "$(prop Type)/$(prop ActiveState)/$(prop SubState)" = notify/active/running
PID=$(prop MainPID)

# -- hardening in force on the live process
status() { in_box cat "/proc/$PID/status"; }
check "dynamic user" test "$(status | awk '/^Uid:/ {print $2}')" -ge 61184
check "no capabilities" sh -c "docker exec $NAME cat /proc/$PID/status | grep -q '^CapEff:[[:space:]]*0000000000000000'"
check "seccomp filter" sh -c "docker exec $NAME cat /proc/$PID/status | grep -q '^Seccomp:[[:space:]]*2'"
check "no new privileges" sh -c "docker exec $NAME cat /proc/$PID/status | grep -q '^NoNewPrivs:[[:space:]]*1'"
EXPOSURE=$(in_box systemd-analyze security runpod-budget 2>/dev/null | sed -n 's/.*Overall exposure level for runpod-budget.service: \([0-9.]*\).*/\1/p')
check "exposure <= 2.0 (${EXPOSURE:-?})" awk -v e="${EXPOSURE:-99}" 'BEGIN { exit !(e <= 2.0) }'
check "root fs read-only" sh -c "docker exec $NAME nsenter -t $PID -m sh -c '! touch /opt/runpod-budget/x 2>/dev/null'"

# -- credentials: the API key reached the daemon (the simulator checks it),
#    the webhook secret too (the receiver verifies the signature)
wait_until 60 test "$(hook_count)" -ge 1 || true
check "signed alert (credentials)" test "$(hook_count)" -ge 1
metrics() { "$PYTHON" -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "http://127.0.0.1:$PORT/metrics"; }
metrics >"$WORK/metrics.txt" 2>&1
check "metrics" grep -q '^runpod_budget_polls_total{result="ok"}' "$WORK/metrics.txt"
# ProcSubset=pid hides /proc/stat: the standard process metrics must still be there
check "process metrics" sh -c "grep -q '^process_max_fds' $WORK/metrics.txt && grep -q '^process_resident_memory_bytes' $WORK/metrics.txt"

# -- reload
sctl reload runpod-budget
wait_until 20 sh -c "docker exec $NAME journalctl -u runpod-budget -o cat | grep -q config.reloaded" || true
check "reload" sh -c "docker exec $NAME journalctl -u runpod-budget -o cat | grep -q config.reloaded"
check "same pid after reload" test "$(prop MainPID)" = "$PID"

# -- watchdog: a stopped daemon sends no WATCHDOG=1; systemd aborts and restarts it
t=$(date +%s.%N)
in_box sh -c "kill -STOP $PID"
wait_until 60 sh -c "test \"\$(docker exec $NAME systemctl show -p NRestarts --value runpod-budget)\" -ge 1 \
  && test \"\$(docker exec $NAME systemctl show -p SubState --value runpod-budget)\" = running" || true
TIMING[watchdog]="$(elapsed "$t")s"
check "watchdog restart" sh -c "docker exec $NAME journalctl -u runpod-budget -o cat | grep -q 'Watchdog timeout'"
check "running again" test "$(prop SubState)" = running -a "$(prop MainPID)" != "$PID"

# -- clean stop
t=$(date +%s.%N)
sctl stop runpod-budget
TIMING[stop]="$(elapsed "$t")s"
check "clean stop" test "$(prop Result)/$(prop ExecMainStatus)" = success/0
check "no duplicate alert" test "$(hook_count)" -ge 1 -a "$(hook_count)" = "$(hook_distinct)"

# -- a missing credential: systemd's 243/CREDENTIALS, before the daemon runs.
#    (SLACK_WEBHOOK_URL: the unit loads it, the smoke config does not use it.)
in_box rm /etc/runpod-budget/credentials/SLACK_WEBHOOK_URL
sctl start runpod-budget >/dev/null 2>&1
check "missing credential -> 243" test "$(prop ExecMainStatus)" = 243
in_box journalctl -u runpod-budget -o cat | grep -iE 'credential|243' | tail -n 3 >"$WORK/cred.txt"
log "missing credential says: $(tr '\n' '|' <"$WORK/cred.txt")"
sctl stop runpod-budget >/dev/null 2>&1
sctl reset-failed runpod-budget >/dev/null 2>&1
# -- the README's remedy: reset the list in a drop-in, name the ones in use
printf '[Service]\nLoadCredential=\nLoadCredential=RUNPOD_API_KEY:/etc/runpod-budget/credentials/RUNPOD_API_KEY\nLoadCredential=WEBHOOK_SECRET:/etc/runpod-budget/credentials/WEBHOOK_SECRET\n' \
  | docker exec -i "$NAME" tee /etc/systemd/system/runpod-budget.service.d/override.conf >/dev/null
sctl daemon-reload
sctl start runpod-budget >/dev/null 2>&1
check "drop-in without the credential starts" test "$(prop ActiveState)" = active
sctl stop runpod-budget >/dev/null 2>&1
check "stopped" test "$(prop ActiveState)" = inactive

TOTAL="$(elapsed "$T0")s"
VERDICT="systemd smoke: $([[ ${#BAD[@]} == 0 ]] && echo PASS || echo FAIL)"
VERDICT+=" | base ${TIMING[base]}, systemd image ${TIMING[build]}, README install ${TIMING[install]}"
VERDICT+=", start (READY) ${TIMING[start]}, watchdog restart ${TIMING[watchdog]}, stop ${TIMING[stop]}, total $TOTAL"
VERDICT+=" | ok: $(IFS=,; echo "${OK[*]}")"
[[ ${#BAD[@]} == 0 ]] || VERDICT+=" | FAILED: $(IFS=,; echo "${BAD[*]}")"
if [[ ${#BAD[@]} != 0 ]]; then
  in_box journalctl -u runpod-budget -o cat --no-pager | tail -n 30 >&2
fi
echo "$VERDICT"
[[ ${#BAD[@]} == 0 ]]
