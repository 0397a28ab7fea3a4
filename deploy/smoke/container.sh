#!/usr/bin/env bash
# Container smoke test: builds deploy/docker/Dockerfile (legacy builder) on a
# Debian bookworm stand-in for python:3.11-slim, runs it the way
# docker-compose.yml does (uid 10001, read-only root, no capabilities,
# secrets as files) against the project's RunPod simulator and a signed-
# webhook receiver on 127.0.0.1, and checks: healthy, one signed alert, clean
# stop (exit 0), restart on the same volume without a duplicate alert.
# Prints one verdict line; exits 0 only if every check passed.
#
#   bash deploy/smoke/container.sh            (root, dockerd + debootstrap installed)
#
# Takes a few minutes (debootstrap, pip). Knobs: see deploy/smoke/lib.sh.
# Everything it starts (dockerd if it was not running, containers, images,
# volumes, simulator, receiver) is removed at the end.

# ---- the simulator the daemon talks to (switch to API v2 here) ----
SIM_MODULE="${SIM_MODULE:-daemon.simulator}"
SIM_SCENARIO="${SIM_SCENARIO:-demo}"
SIM_API_VERSION="${SIM_API_VERSION:-}"    # e.g. v1; empty: the daemon's default

# shellcheck source=deploy/smoke/lib.sh
source "$(dirname "$0")/lib.sh"

IMAGE="runpod-budget:$SMOKE_TAG"
NAME="runpod-budget-$SMOKE_TAG"
VOLUME="runpod-budget-$SMOKE_TAG"
# The image's HEALTHCHECK asks 127.0.0.1:9464, and the container shares the
# host's network here: 9464 must be free on the host.
PORT=9464
declare -a OK=() BAD=()
# Set-up steps die on failure; checks only record theirs (see set +e below).
check() {  # check LABEL CMD...: record the outcome
  local label=$1; shift
  if "$@"; then OK+=("$label"); else BAD+=("$label"); log "check failed: $label"; fi
}

"$PYTHON" -c "import socket; socket.create_server(('127.0.0.1', $PORT)).close()" 2>/dev/null \
  || die "127.0.0.1:$PORT is in use (the container needs it on the host network)"
ensure_dockerd
export DOCKER_BUILDKIT=0      # the legacy builder, as on Debian 12's docker.io

build_standin_base
log "base: ${TIMING[base]}"

t=$(date +%s.%N)
mapfile -d '' PIP_ARGS < <(pip_build_args)
log "docker build (legacy builder) on $PYTHON_IMAGE"
forget_build_leftovers
at_exit "docker rmi -f $IMAGE"
docker build --network host -q -f deploy/docker/Dockerfile \
  --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" "${PIP_ARGS[@]}" -t "$IMAGE" . \
  >"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log" >&2; die "docker build failed"; }
TIMING[build]="$(elapsed "$t")s"
SIZE_MB=$(( $(docker image inspect -f '{{.Size}}' "$IMAGE") / 1000000 ))
log "built $IMAGE in ${TIMING[build]} ($SIZE_MB MB)"

start_fakes
write_config "$WORK/budgets.yaml" "127.0.0.1:$PORT"
mkdir -p "$WORK/secrets"
printf %s "$SIM_KEY" >"$WORK/secrets/runpod_api_key"
printf %s "$HOOK_SECRET" >"$WORK/secrets/webhook_secret"
chmod 0444 "$WORK/secrets"/* "$WORK/budgets.yaml"
chmod 0755 "$WORK/secrets"

docker volume create "$VOLUME" >/dev/null
at_exit "docker volume rm -f $VOLUME"
at_exit "docker rm -f $NAME"

# As docker-compose.yml runs it, on the host network so that the container
# reaches the simulator and receiver on 127.0.0.1 and nothing leaves loopback.
run_container() {
  docker run -d --name "$NAME" --network host \
    --read-only --tmpfs /tmp:size=16m,mode=1777 --user 10001:10001 \
    --cap-drop ALL --security-opt no-new-privileges:true --init \
    --memory 256m --pids-limit 64 \
    -e "RUNPOD_API_BASE_URL=$SIM_URL" -e "RUNPOD_GRAPHQL_URL=$SIM_GRAPHQL_URL" \
    -e RUNPOD_API_KEY_FILE=/run/secrets/runpod_api_key \
    -e WEBHOOK_SECRET_FILE=/run/secrets/webhook_secret \
    -v "$WORK/secrets:/run/secrets:ro" \
    -v "$WORK/budgets.yaml:/etc/runpod-budget/budgets.yaml:ro" \
    -v "$VOLUME:/var/lib/runpod-budget" \
    "$IMAGE" >/dev/null
}
health() { [[ "$(docker inspect -f '{{.State.Health.Status}}' "$NAME")" == healthy ]]; }

# From here on a failure is a failed check, not the end of the run.
set +e
t=$(date +%s.%N)
run_container
if wait_until 90 health; then TIMING[healthy]="$(elapsed "$t")s"; else TIMING[healthy]="never"; fi
check healthy health
check "uid 10001" test "$(docker exec "$NAME" id -u)" = 10001
check "read-only root" test "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$NAME")" = true
check "root not writable" docker exec "$NAME" sh -c '! touch /opt/x 2>/dev/null'
check "state writable" docker exec "$NAME" test -w /var/lib/runpod-budget
wait_until 60 test "$(hook_count)" -ge 1 || true
check "signed alert" test "$(hook_count)" -ge 1
docker kill -s HUP "$NAME" >/dev/null
wait_until 20 sh -c "docker logs $NAME 2>&1 | grep -q config.reloaded" || true
check "reload (SIGHUP)" sh -c "docker logs $NAME 2>&1 | grep -q config.reloaded"
sleep 2
ALERTS=$(hook_count)

t=$(date +%s.%N)
docker stop -t 60 "$NAME" >/dev/null
TIMING[stop]="$(elapsed "$t")s"
check "clean stop (exit 0)" test "$(docker inspect -f '{{.State.ExitCode}}' "$NAME")" = 0
docker logs "$NAME" >"$WORK/run1.log" 2>&1
docker rm "$NAME" >/dev/null

# Same volume, fresh container: the ledger must keep the alert from being sent again.
run_container
wait_until 90 health || true
check "healthy after restart" health
# one full poll cycle after the restart
wait_until 60 sh -c "docker logs $NAME 2>&1 | grep -q cycle.done" || true
sleep "${SMOKE_SETTLE:-5}"
check "no duplicate after restart" test "$ALERTS" -ge 1 -a "$(hook_count)" = "$ALERTS" -a "$(hook_distinct)" = "$ALERTS"
docker stop -t 60 "$NAME" >/dev/null
check "clean stop after restart" test "$(docker inspect -f '{{.State.ExitCode}}' "$NAME")" = 0

# A bind-mounted state directory owned by root: the daemon (uid 10001) cannot
# create its database and exits 3, as deploy/README.md says.
mkdir -p "$WORK/rootstate"
chmod 0755 "$WORK/rootstate"
docker run --rm --network host --read-only --user 10001:10001 \
  -e "RUNPOD_API_BASE_URL=$SIM_URL" -e "RUNPOD_GRAPHQL_URL=$SIM_GRAPHQL_URL" \
  -e RUNPOD_API_KEY_FILE=/run/secrets/runpod_api_key \
  -e WEBHOOK_SECRET_FILE=/run/secrets/webhook_secret \
  -v "$WORK/secrets:/run/secrets:ro" \
  -v "$WORK/budgets.yaml:/etc/runpod-budget/budgets.yaml:ro" \
  -v "$WORK/rootstate:/var/lib/runpod-budget" \
  "$IMAGE" >"$WORK/rootstate.log" 2>&1
ROOTSTATE_RC=$?
log "root-owned state dir: exit $ROOTSTATE_RC: $(tail -n 1 "$WORK/rootstate.log")"
check "root-owned state dir -> exit 3" test "$ROOTSTATE_RC" = 3

TOTAL="$(elapsed "$T0")s"
VERDICT="container smoke: $([[ ${#BAD[@]} == 0 ]] && echo PASS || echo FAIL)"
VERDICT+=" | base ${TIMING[base]}, build ${TIMING[build]} ($SIZE_MB MB), start->healthy ${TIMING[healthy]}"
VERDICT+=", stop ${TIMING[stop]}, total $TOTAL | ok: $(IFS=,; echo "${OK[*]}")"
[[ ${#BAD[@]} == 0 ]] || VERDICT+=" | FAILED: $(IFS=,; echo "${BAD[*]}")"
if [[ ${#BAD[@]} != 0 ]]; then
  log "first run's log:"; tail -n 20 "$WORK/run1.log" >&2
  log "second run's log:"; docker logs "$NAME" 2>&1 | tail -n 20 >&2
fi
echo "$VERDICT"
[[ ${#BAD[@]} == 0 ]]
