#!/usr/bin/env bash
# `selfheal proxy` against nginx as a reverse proxy, in front of the same upstream,
# with and without an access log.
#
# Usage: bench/proxy_vs_nginx.sh
#   DURATION=10s CONNECTIONS=64 WRK_THREADS=2 ROUNDS=3 bench/proxy_vs_nginx.sh
#   PROXY_ARGS="--workers 1" bench/proxy_vs_nginx.sh   (extra flags for selfheal proxy)
#   PAIRS="log" / PAIRS="nolog" bench/proxy_vs_nginx.sh (one pairing only)
#
# Upstream: nginx answering `return 200 "ok"` on a free loopback port.
# nginx reverse proxy, configured fairly (worker_processes auto, upstream
# keepalive pool, proxy_http_version 1.1, Connection "") and, by default, setting
# the same request headers selfheal sets (NGINX_HEADERS). Two pairings, each
# nginx then selfheal:
#   log:   nginx with `access_log FILE combined buffer=64k flush=1s` (as nginx
#          users configure a busy access log) vs selfheal with its default
#          access log (stdout to a file);
#   nolog: nginx `access_log off` vs selfheal --no-access-log.
# Every round runs A B of each pairing (log A B, nolog A B), ROUNDS rounds, so
# other load on the machine hits both sides alike; then once direct to the
# upstream. Prints req/s, p99 and the proxy's CPU time per request (utime+stime
# from /proc, summed over nginx's workers; steadier than req/s when other work
# shares the cores) per run, the selfheal/nginx ratio of each round, and the
# medians. Loopback only; cleans up on exit.
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

# Starts nginx with config body $2 in its own prefix $WORK/$1; access_log
# directive $3 (default: off).
start_nginx() {
  local body=$2 dir="$WORK/$1" access=${3:-off}
  mkdir -p "$dir/logs" "$dir/tmp"
  cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log $access;
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
NGX_LOG_PORT=$(free_port)
SH_PORT=$(free_port)
SH_LOG_PORT=$(free_port)

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
NGX_PROXY="upstream app { server 127.0.0.1:$UP_PORT; keepalive 128; }
  map \$http_x_request_id \$rid { \"\" \$request_id; default \$http_x_request_id; }
  server { listen 127.0.0.1:PORT; location / {
    proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\";
    $NGX_HEADERS } }"
start_nginx proxy-log "${NGX_PROXY/PORT/$NGX_LOG_PORT}" "$WORK/proxy-log/logs/access.log combined buffer=64k flush=1s"
NGX_LOG_MASTER=$!
start_nginx proxy-nolog "${NGX_PROXY/PORT/$NGX_PORT}"
NGX_MASTER=$!
# shellcheck disable=SC2086 # PROXY_ARGS: extra flags, split on purpose
"$BIN" proxy --listen "127.0.0.1:$SH_LOG_PORT" --upstream "127.0.0.1:$UP_PORT" ${PROXY_ARGS:-} \
  >"$WORK/selfheal-log.out" 2>&1 &
bench_track $!
SH_LOG_PID=$!
# shellcheck disable=SC2086
"$BIN" proxy --listen "127.0.0.1:$SH_PORT" --upstream "127.0.0.1:$UP_PORT" --no-access-log ${PROXY_ARGS:-} \
  >"$WORK/selfheal.out" 2>&1 &
bench_track $!
SH_PID=$!
for port in "$UP_PORT" "$NGX_LOG_PORT" "$NGX_PORT" "$SH_LOG_PORT" "$SH_PORT"; do wait_port "$port"; done
NGX_LOG_WORKERS=$(pgrep -d' ' -P "$NGX_LOG_MASTER")
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
for port in "$NGX_LOG_PORT" "$SH_LOG_PORT" "$NGX_PORT" "$SH_PORT"; do
  wrk -t1 -c8 -d1s "http://127.0.0.1:$port/" >/dev/null
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

PAIRS=${PAIRS:-log nolog}
echo "GET / through a proxy to nginx return 200; wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency; $(nproc) cores, loopback"
echo "pairings: $PAIRS (log: nginx access_log buffer=64k flush=1s vs selfheal default access log; nolog: both off)"
printf '%-6s %-6s %-10s %12s %10s %16s %22s\n' round pair target "req/s" "p99 ms" "proxy CPU us/req" "selfheal/nginx req/s"
declare -A RPS P99 CPU RATIO P99RATIO
for r in $(seq 1 "$ROUNDS"); do
  for pair in $PAIRS; do
    if [ "$pair" = log ]; then
      n_port=$NGX_LOG_PORT; n_pids=$NGX_LOG_WORKERS; s_port=$SH_LOG_PORT; s_pid=$SH_LOG_PID
    else
      n_port=$NGX_PORT; n_pids=$NGX_WORKERS; s_port=$SH_PORT; s_pid=$SH_PID
    fi
    # shellcheck disable=SC2086
    read -r n_rps n_p99 n_cpu < <(run "$n_port" $n_pids)
    printf '%-6s %-6s %-10s %12s %10s %16s\n' "$r" "$pair" nginx "$n_rps" "$n_p99" "$n_cpu"
    read -r s_rps s_p99 s_cpu < <(run "$s_port" "$s_pid")
    ratio=$(awk -v s="$s_rps" -v n="$n_rps" 'BEGIN {printf "%.3f", s/n}')
    p99ratio=$(awk -v s="$s_p99" -v n="$n_p99" 'BEGIN {printf "%.3f", s/n}')
    printf '%-6s %-6s %-10s %12s %10s %16s %22s\n' "$r" "$pair" selfheal "$s_rps" "$s_p99" "$s_cpu" "x$ratio (p99 x$p99ratio)"
    RPS[$pair,nginx]+=" $n_rps"; P99[$pair,nginx]+=" $n_p99"; CPU[$pair,nginx]+=" $n_cpu"
    RPS[$pair,selfheal]+=" $s_rps"; P99[$pair,selfheal]+=" $s_p99"; CPU[$pair,selfheal]+=" $s_cpu"
    RATIO[$pair]+=" $ratio"; P99RATIO[$pair]+=" $p99ratio"
  done
done
read -r D_RPS D_P99 _ < <(run "$UP_PORT")
printf '%-6s %-6s %-10s %12s %10s\n' "-" "-" direct "$D_RPS" "$D_P99"

echo
for pair in $PAIRS; do
  for t in nginx selfheal; do
    # shellcheck disable=SC2086
    printf 'median %-6s %-9s %10.0f req/s  p99 %6.2f ms  %6.2f us CPU/req\n' "$pair" "$t" \
      "$(median ${RPS[$pair,$t]})" "$(median ${P99[$pair,$t]})" "$(median ${CPU[$pair,$t]})"
  done
  # shellcheck disable=SC2086
  awk -v pair="$pair" -v r="$(median ${RATIO[$pair]})" -v p="$(median ${P99RATIO[$pair]})" \
      -v rs="${RATIO[$pair]}" -v d="$D_RPS" -v s="$(median ${RPS[$pair,selfheal]})" -v n="$(median ${RPS[$pair,nginx]})" \
      -v sc="$(median ${CPU[$pair,selfheal]})" -v nc="$(median ${CPU[$pair,nginx]})" 'BEGIN {
    k = split(rs, a, " "); won = 0; for (i = 1; i <= k; i++) if (a[i] >= 1) won++
    printf "%-5s selfheal/nginx: median of round ratios req/s x%.2f, p99 x%.2f; ratio of medians req/s x%.2f, CPU/req x%.2f; selfheal ahead in %d of %d rounds\n", pair, r, p, s/n, sc/nc, won, k
    printf "%-5s selfheal/direct req/s x%.2f   nginx/direct req/s x%.2f\n", pair, s/d, n/d }'
done
# Both logs hold one line per request (nginx flushes its buffer at most 1 s late).
sleep 1.2
echo "access lines written: selfheal $(grep -c ' INFO method=' "$WORK/selfheal-log.out" || true)," \
  "nginx $(wc -l <"$WORK/proxy-log/logs/access.log")"
