#!/usr/bin/env bash
# `selfheal proxy` against nginx as a reverse proxy, in front of the same upstream.
#
# Usage: bench/proxy_vs_nginx.sh
#   DURATION=10s CONNECTIONS=64 WRK_THREADS=2 ROUNDS=2 bench/proxy_vs_nginx.sh
#   PROXY_ARGS="--workers 1" bench/proxy_vs_nginx.sh   (extra flags for selfheal proxy)
#
# Upstream: nginx answering `return 200 "ok"` on a free loopback port.
# A: nginx reverse proxy, configured fairly (worker_processes auto, upstream
#    keepalive pool, proxy_http_version 1.1, Connection "", access_log off) and, by
#    default, setting the same request headers selfheal sets (NGINX_HEADERS).
# B: selfheal proxy --no-access-log (one runtime per core).
# Runs A B A B … (ROUNDS each), then once direct to the upstream; prints req/s,
# p99 and the proxy's CPU time per request (utime+stime from /proc, summed over
# nginx's workers; steadier than req/s when other work shares the cores), the
# medians and the ratios. Loopback only; cleans up on exit.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
ROUNDS=${ROUNDS:-3}
NGINX=${NGINX:-/usr/sbin/nginx}

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup proxy wrk python3 "$NGINX"

# Waits (at most 10 s) until something answers on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2; exit 1
}

# Starts nginx with config body $2 in its own prefix $WORK/$1.
start_nginx() {
  local body=$2 dir="$WORK/$1"
  mkdir -p "$dir/logs" "$dir/tmp"
  cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 100000;
  $body
}
CONF
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" &
  bench_track $!
}

UP_PORT=$(free_port)
NGX_PORT=$(free_port)
SH_PORT=$(free_port)

start_nginx upstream "server { listen 127.0.0.1:$UP_PORT; location / { return 200 \"ok\"; } }"
# NGINX_HEADERS=same (default): nginx sets the headers selfheal proxy sets on every
# request (client Host, X-Forwarded-For/-Proto/-Host, X-Request-Id when absent),
# so both do the same work and the upstream parses the same requests.
# NGINX_HEADERS=minimal: nginx forwards with its defaults only.
if [ "${NGINX_HEADERS:-same}" = same ]; then
  # shellcheck disable=SC2016 # nginx variables, not shell ones
  NGX_HEADERS='proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $host;
    proxy_set_header X-Request-Id $rid;'
else
  NGX_HEADERS=''
fi
start_nginx proxy "upstream app { server 127.0.0.1:$UP_PORT; keepalive 128; }
  map \$http_x_request_id \$rid { \"\" \$request_id; default \$http_x_request_id; }
  server { listen 127.0.0.1:$NGX_PORT; location / {
    proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\";
    $NGX_HEADERS } }"
NGX_MASTER=$!
# shellcheck disable=SC2086 # PROXY_ARGS: extra flags, split on purpose
"$BIN" proxy --listen "127.0.0.1:$SH_PORT" --upstream "127.0.0.1:$UP_PORT" --no-access-log ${PROXY_ARGS:-} \
  >"$WORK/selfheal.log" 2>&1 &
bench_track $!
SH_PID=$!
wait_port "$UP_PORT"; wait_port "$NGX_PORT"; wait_port "$SH_PORT"
NGX_WORKERS=$(pgrep -d' ' -P "$NGX_MASTER")

# CPU ticks (utime+stime) of the given pids.
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
HZ=$(getconf CLK_TCK)

# One wrk run against port $1 (CPU of pids $2…); prints "req/s p99_ms cpu_us_per_req".
run() {
  local port=$1 out rps p99 n t0 t1; shift
  t0=$(ticks "$@")
  out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$port/")
  t1=$(ticks "$@")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers on port $port:" >&2; echo "$out" >&2; exit 1; fi
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}' <<<"$out")
  echo "$rps $p99 $(awk -v d=$((t1 - t0)) -v n="$n" -v hz="$HZ" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}')"
}

# Warm-up (connections, pools, caches).
wrk -t1 -c8 -d1s "http://127.0.0.1:$NGX_PORT/" >/dev/null
wrk -t1 -c8 -d1s "http://127.0.0.1:$SH_PORT/" >/dev/null

echo "GET / through a proxy to nginx return 200; wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency; $(nproc) cores, loopback"
printf '%-8s %-14s %12s %10s %16s\n' round target "req/s" "p99 ms" "proxy CPU us/req"
NGX_RPS=(); NGX_P99=(); NGX_CPU=(); SH_RPS=(); SH_P99=(); SH_CPU=()
for r in $(seq 1 "$ROUNDS"); do
  # shellcheck disable=SC2086
  read -r rps p99 cpu < <(run "$NGX_PORT" $NGX_WORKERS); NGX_RPS+=("$rps"); NGX_P99+=("$p99"); NGX_CPU+=("$cpu")
  printf '%-8s %-14s %12s %10s %16s\n' "$r" nginx "$rps" "$p99" "$cpu"
  read -r rps p99 cpu < <(run "$SH_PORT" "$SH_PID"); SH_RPS+=("$rps"); SH_P99+=("$p99"); SH_CPU+=("$cpu")
  printf '%-8s %-14s %12s %10s %16s\n' "$r" selfheal "$rps" "$p99" "$cpu"
done
read -r D_RPS D_P99 _ < <(run "$UP_PORT")
printf '%-8s %-14s %12s %10s\n' "-" direct "$D_RPS" "$D_P99"

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
N_RPS=$(median "${NGX_RPS[@]}"); N_P99=$(median "${NGX_P99[@]}"); N_CPU=$(median "${NGX_CPU[@]}")
S_RPS=$(median "${SH_RPS[@]}"); S_P99=$(median "${SH_P99[@]}"); S_CPU=$(median "${SH_CPU[@]}")
echo
printf 'median   nginx    %10.0f req/s  p99 %6.2f ms  %6.2f us CPU/req\n' "$N_RPS" "$N_P99" "$N_CPU"
printf 'median   selfheal %10.0f req/s  p99 %6.2f ms  %6.2f us CPU/req\n' "$S_RPS" "$S_P99" "$S_CPU"
awk -v s="$S_RPS" -v n="$N_RPS" -v d="$D_RPS" -v sp="$S_P99" -v np="$N_P99" -v sc="$S_CPU" -v nc="$N_CPU" 'BEGIN {
  printf "selfheal/nginx  req/s x%.2f   p99 x%.2f   CPU/req x%.2f\n", s/n, sp/np, sc/nc
  printf "selfheal/direct req/s x%.2f   nginx/direct req/s x%.2f\n", s/d, n/d }'
