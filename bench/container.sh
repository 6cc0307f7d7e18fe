#!/usr/bin/env bash
# Container figures for docs/benchmarks.md:
#   - image size                       docker image inspect -f '{{.Size}}'
#   - cold start                       `docker run` -> first 2xx on :8080 (p50, min, max of RUNS)
#   - stop                             `docker stop` duration of a serving container
#   - idle memory                      `docker stats --no-stream` and the sum of VmRSS
#                                      inside, once the container is healthy
#
# Usage: bench/container.sh            (the image must exist: ci/container-test.sh builds it)
# Environment:
#   SELFHEAL_IMAGE   image (default selfheal:test)
#   RUNS             cold starts to measure (default 10)
#
# All traffic is on loopback (127.0.0.1, a port Docker picks). Every container
# and volume it creates is removed on exit.
set -euo pipefail

IMAGE=${SELFHEAL_IMAGE:-selfheal:test}
RUNS=${RUNS:-10}
START_TIMEOUT_MS=60000
PREFIX=selfheal-bench-$$

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
command -v docker >/dev/null || die "docker CLI not found"
command -v curl >/dev/null || die "curl not found"
docker info >/dev/null 2>&1 || die "Docker engine unreachable"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE not found (build it: ci/container-test.sh)"

created=()
cleanup() {
    local name
    for name in "${created[@]}"; do
        docker rm -f -v "$name" >/dev/null 2>&1 || true
        docker volume rm -f "$name-data" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# run NAME: docker run -d, prints nothing
run() {
    local name=$1
    created+=("$name")
    docker run -d --name "$name" -p 127.0.0.1::8080 -v "$name-data:/data" "$IMAGE" >/dev/null
}

# wait_2xx NAME DEADLINE_MS: polls GET / until a 2xx; fails at the deadline
wait_2xx() {
    local name=$1 deadline=$2 port="" code
    while (($(now_ms) < deadline)); do
        if [[ -z $port ]]; then
            port=$(docker port "$name" 8080/tcp 2>/dev/null | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -n1)
        fi
        if [[ -n $port ]]; then
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/" || true)
            [[ $code == 2* ]] && return 0
        fi
        if [[ $(docker inspect -f '{{.State.Running}}' "$name") != true ]]; then
            docker logs "$name" 2>&1 | tail -n 20 >&2
            die "$name exited (code $(docker inspect -f '{{.State.ExitCode}}' "$name")) before its first 2xx"
        fi
        sleep 0.01
    done
    docker logs "$name" 2>&1 | tail -n 20 >&2
    die "$name: no 2xx on GET / within $((START_TIMEOUT_MS / 1000))s"
}

# percentile P < sorted numbers on stdin (nearest rank)
percentile() {
    awk -v p="$1" '{ a[NR] = $1 } END { i = int((p / 100) * NR + 0.999999); if (i < 1) i = 1; print a[i] }'
}

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
log "image $IMAGE: $size bytes"

# ---- cold start ----------------------------------------------------------
samples=()
for ((i = 1; i <= RUNS; i++)); do
    name=$PREFIX-cold-$i
    t0=$(now_ms)
    run "$name"
    wait_2xx "$name" $((t0 + START_TIMEOUT_MS))
    samples+=($(($(now_ms) - t0)))
    log "cold start $i/$RUNS: ${samples[-1]} ms"
    docker rm -f -v "$name" >/dev/null
    docker volume rm -f "$name-data" >/dev/null
done
sorted=$(printf '%s\n' "${samples[@]}" | sort -n)
p50=$(percentile 50 <<<"$sorted")
min=$(head -n1 <<<"$sorted")
max=$(tail -n1 <<<"$sorted")

# ---- idle memory, then stop ---------------------------------------------
name=$PREFIX-idle
run "$name"
wait_2xx "$name" $(($(now_ms) + START_TIMEOUT_MS))
for ((i = 0; i < 600; i++)); do # up to 60 s
    [[ $(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$name") == healthy ]] && break
    sleep 0.1
done
health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$name")
[[ $health == healthy ]] || log "warning: $name is '$health', not healthy, after 60s"
mem_usage=$(docker stats --no-stream --format '{{.MemUsage}}' "$name" | awk -F' / ' '{ print $1 }')
rss_kib=$(docker exec "$name" sh -c 'cat /proc/[0-9]*/status 2>/dev/null' | awk '/^VmRSS:/ { s += $2 } END { print s + 0 }')
rss_by_process=$(docker exec "$name" sh -c '
    for p in /proc/[0-9]*; do
        r=$(awk "/^VmRSS:/ { print \$2 }" "$p/status" 2>/dev/null) || continue
        [ -n "$r" ] || continue
        printf "%s KiB\t%s\n" "$r" "$(tr "\000" " " < "$p/cmdline" | cut -c1-60)"
    done' | sort -rn)

t0=$(now_ms)
docker stop -t 10 "$name" >/dev/null
stop_ms=$(($(now_ms) - t0))
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$name")

cat <<EOF

| figure | value |
|---|---|
| image size | $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1e6 }')) |
| cold start, docker run -> first 2xx on :8080 (p50 of $RUNS) | $p50 ms (min $min, max $max) |
| docker stop (serving, idle) | $stop_ms ms, exit code $exit_code |
| idle memory, docker stats | $mem_usage |
| idle memory, sum of VmRSS inside | $((rss_kib / 1024)) MiB ($rss_kib KiB) |

Idle RSS by process:
$rss_by_process

image_size_bytes=$size
cold_start_p50_ms=$p50
cold_start_min_ms=$min
cold_start_max_ms=$max
stop_ms=$stop_ms
stop_exit_code=$exit_code
idle_mem_docker_stats=$mem_usage
idle_rss_kib=$rss_kib
EOF
