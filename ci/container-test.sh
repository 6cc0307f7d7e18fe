#!/usr/bin/env bash
# Container end-to-end tests, all steps:
#   1. stand-in base images when the engine lacks them (ci/docker-stand-ins.sh)
#   2. docker build --network host -t "$SELFHEAL_IMAGE" .
#   3. the `container` cargo test target (tests/container/) against that image
#
# Usage: ci/container-test.sh [extra args for the test runner]
#   e.g. ci/container-test.sh kill_9          (a filter)
#
# Environment:
#   SELFHEAL_IMAGE        image tag to build and test (default selfheal:test)
#   SELFHEAL_TEST_THREADS tests run at once (default 2; each runs a container)
#   DOCKER_BUILD_ARGS     extra `docker build` arguments, e.g. "--cpuset-cpus 1"
#   SKIP_BUILD=1          test an image built beforehand
#
# See docs/container.md.
set -euo pipefail

cd "$(dirname "$0")/.."

export SELFHEAL_IMAGE=${SELFHEAL_IMAGE:-selfheal:test}
threads=${SELFHEAL_TEST_THREADS:-2}

log() { printf '[container-test] %s\n' "$*" >&2; }
die() { printf '[container-test] error: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "Docker engine unreachable: the container tests need one (they never skip)"

# Leftovers of an interrupted earlier run (only the tests' own, by label/prefix).
mapfile -t stale < <(docker ps -aq --filter label=selfheal-container-test=1)
if [[ ${#stale[@]} -gt 0 ]]; then
    log "removing ${#stale[@]} leftover test containers"
    docker rm -f -v "${stale[@]}" >/dev/null
fi
mapfile -t stale_volumes < <(docker volume ls -q --filter name=selfheal-ct- --filter dangling=true)
if [[ ${#stale_volumes[@]} -gt 0 ]]; then
    docker volume rm "${stale_volumes[@]}" >/dev/null
fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    ci/docker-stand-ins.sh
    log "docker build --network host -t $SELFHEAL_IMAGE ."
    start=$SECONDS
    # shellcheck disable=SC2086 # DOCKER_BUILD_ARGS is a list of words on purpose
    docker build --network host ${DOCKER_BUILD_ARGS:-} -t "$SELFHEAL_IMAGE" . ||
        die "docker build failed"
    log "image built in $((SECONDS - start))s, $(docker image inspect -f '{{.Size}}' "$SELFHEAL_IMAGE") bytes"
fi
docker image inspect "$SELFHEAL_IMAGE" >/dev/null 2>&1 || die "image $SELFHEAL_IMAGE not found"
docker run --rm "$SELFHEAL_IMAGE" --version >/dev/null || die "$SELFHEAL_IMAGE: selfheal --version failed"

log "running the container tests ($threads at a time) against $SELFHEAL_IMAGE"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --test container --test-threads "$threads" --no-fail-fast "$@"
else
    cargo test --test container --no-fail-fast -- --test-threads "$threads" "$@"
fi
