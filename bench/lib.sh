# bench/lib.sh — shell helpers shared by bench/run and bench/llm; sourced,
# never run. The caller sets ROOT (the source tree) first. It provides logging,
# the work dir and the cleanup that kills every process started (on any exit),
# free ports, /proc readings, nginx config rendering, readiness waits, and
# starting nginx, Meridian and Portkey. Traffic stays on 127.0.0.1.
# shellcheck shell=bash
# The variables these functions set are their results, read by the callers:
# shellcheck disable=SC2034

BENCH=$ROOT/bench
NPROC=$(nproc 2>/dev/null || echo 1)
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

log()  { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[bench %s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# Microsecond wall clock (bash >= 5 has EPOCHREALTIME).
now_us() {
  if [ -n "${EPOCHREALTIME:-}" ]; then local t=${EPOCHREALTIME/[.,]/}; echo "$t"
  else echo $(( $(date +%s%N) / 1000 )); fi
}

# raise_nofile — sets NOFILE. 10,000 open streams need ~20,000 descriptors
# in a proxy (client + upstream socket each). Raising the hard limit needs
# CAP_SYS_RESOURCE; without it the soft limit goes up to the hard one and the
# callers cap their stream counts to fit.
raise_nofile() {
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  NOFILE=$(ulimit -n)
  case "$NOFILE" in unlimited) NOFILE=1048576 ;; esac
}

# need_tools CMD... — installs what is missing with apt-get (as root), or stops
# with the list to install; sets NGINX.
need_tools() {
  local c t need_install=""
  for c in "$@"; do
    case "$c" in
      nginx) command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_install="$need_install nginx-light" ;;
      cc) command -v cc >/dev/null 2>&1 || need_install="$need_install gcc libc6-dev" ;;
      *) command -v "$c" >/dev/null 2>&1 || need_install="$need_install $c" ;;
    esac
  done
  if [ -n "$need_install" ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "installing:$need_install"
      export DEBIAN_FRONTEND=noninteractive
      # shellcheck disable=SC2086
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends $need_install; } >&2 \
        || die "apt-get install$need_install failed"
    else
      die "missing:$need_install — install them (apt-get install -y$need_install) or run as root"
    fi
  fi
  NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
  for t in timeout awk sed getconf; do
    command -v "$t" >/dev/null 2>&1 || die "missing '$t' (coreutils/mawk/sed)"
  done
}

# setup_pinning — PIN (auto/1/0) -> SRV_CPU, WRK_CPU, PIN_SRV, PIN_WRK (taskset
# prefixes: servers on CPU 0, load generators on the last CPU).
setup_pinning() {
  if [ "$PIN" = auto ]; then
    if command -v taskset >/dev/null 2>&1 && [ "$NPROC" -ge 2 ]; then PIN=1; else PIN=0; fi
  fi
  if [ "$PIN" = 1 ]; then
    command -v taskset >/dev/null 2>&1 || die "--pin needs taskset (util-linux)"
    [ "$NPROC" -ge 2 ] || die "--pin needs at least 2 CPUs"
    SRV_CPU=0; WRK_CPU=$((NPROC - 1))
    PIN_SRV=(taskset -c "$SRV_CPU"); PIN_WRK=(taskset -c "$WRK_CPU")
  else
    PIN_SRV=(); PIN_WRK=()
  fi
}

# ---------------------------------------------------------------- work dir & cleanup
PIDS=()          # every process we started (masters / meridian)
EXTRA_PIDS=()    # nginx workers, killed too in case a master dies first

kill_wait() {   # kill_wait SIG DEADLINE_MS PID... — signal, then wait with a deadline
  local sig=$1 ms=$2; shift 2
  local p end alive
  for p in "$@"; do kill "-$sig" "$p" 2>/dev/null; done
  end=$(( $(now_us) + ms * 1000 ))
  while :; do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && return 0
    [ "$(now_us)" -ge $end ] && return 1
    sleep 0.05
  done
}

cleanup() {
  local rc=$? p live_workers=()
  trap - EXIT INT TERM HUP
  # nginx workers are grandchildren: their pids could have been reused once they
  # exited, so only those still named nginx are signalled.
  for p in "${EXTRA_PIDS[@]}"; do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = nginx ] && live_workers+=("$p")
  done
  if [ ${#PIDS[@]} -gt 0 ] || [ ${#live_workers[@]} -gt 0 ]; then
    kill_wait TERM 5000 "${PIDS[@]}" "${live_workers[@]}" ||
      kill_wait KILL 2000 "${PIDS[@]}" "${live_workers[@]}"
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  fi
  if [ "${KEEP_WORKDIR:-0}" = 1 ]; then log "work dir kept: $W"; else rm -rf "$W"; fi
  exit $rc
}
# make_workdir — sets W (a fresh temp dir) and arms the cleanup on every exit.
make_workdir() {
  W=$(mktemp -d "${TMPDIR:-/tmp}/meridian-bench.XXXXXX") || die "mktemp failed"
  trap cleanup EXIT
  trap 'echo >&2; log "interrupted"; exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

stop_procs() {  # stop_procs PID... (and forget them)
  [ $# -gt 0 ] || return 0
  kill_wait TERM 5000 "$@" || kill_wait KILL 2000 "$@"
  local p keep=() x
  for p in "$@"; do wait "$p" 2>/dev/null; done
  for x in "${PIDS[@]}"; do
    for p in "$@"; do [ "$x" = "$p" ] && continue 2; done; keep+=("$x")
  done
  PIDS=("${keep[@]}")
}
# ---------------------------------------------------------------- ports
PORTS_TAKEN=" "
port_in_use() {
  if command -v ss >/dev/null 2>&1; then
    ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q .
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}
pick_port() {   # sets PORT (not in a subshell, so PORTS_TAKEN is kept)
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    case "$PORTS_TAKEN" in *" $p "*) continue ;; esac
    port_in_use "$p" && continue
    PORTS_TAKEN="$PORTS_TAKEN$p "
    PORT=$p; return 0
  done
  die "no free TCP port found"
}

# ---------------------------------------------------------------- /proc helpers
children_of() {
  local p=$1 c
  if [ -r "/proc/$p/task/$p/children" ]; then
    c=$(cat "/proc/$p/task/$p/children" 2>/dev/null); echo "${c% }"
  elif command -v pgrep >/dev/null 2>&1; then
    pgrep -P "$p" | tr '\n' ' '; echo
  else
    for c in /proc/[0-9]*; do
      [ "$(awk '{print $4}' "$c/stat" 2>/dev/null)" = "$p" ] && printf '%s ' "${c#/proc/}"
    done; echo
  fi
}
cpu_ticks() {   # sum of utime+stime (clock ticks) over PIDs (one awk: forks are slow here)
  local p files=()
  for p in "$@"; do files+=("/proc/$p/stat"); done
  [ ${#files[@]} -gt 0 ] || { echo 0; return; }
  # fields after the ")" of comm: state is 1, utime 12, stime 13
  cat "${files[@]}" 2>/dev/null | awk '{ sub(/.*\) /, ""); split($0, f, " "); t += f[12] + f[13] } END { print t + 0 }'
}
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4; exit }' /proc/stat; }   # user+nice+system, all CPUs
rss_kb() { awk '/^VmRSS:/ {print $2; f=1} END {if (!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- rendering
# nginx_body NAME FILE — sets R_<NAME>_SET (`set $bench_name_N '...';`
# directives) and R_<NAME>_REF ("${bench_name_0}${bench_name_1}…") so that
# `return 200 "REF"` answers the file's exact bytes. Split because one
# nginx.conf token is limited to ~4 KB. Inside the quotes \ and ' are escaped
# and newlines written as \n; `$` cannot be escaped, so bodies must not hold it.
nginx_body() {
  local name=$1 f=$2 lc=${1,,} body piece i=0 set="" ref=""
  body=$(cat "$f"; printf x) || die "cannot read $f"; body=${body%x}
  case "$body" in *'$'*) die "$f contains '\$' (nginx would treat it as a variable)" ;; esac
  [ -n "$body" ] || die "$f is empty"
  while [ -n "$body" ]; do
    piece=${body:0:1500}; body=${body:1500}
    piece=${piece//\\/\\\\}
    piece=${piece//\'/\\\'}
    piece=${piece//$'\n'/\\n}
    set="$set set \$bench_${lc}_$i '$piece';"
    ref="$ref\${bench_${lc}_$i}"
    i=$((i + 1))
  done
  printf -v "R_${name}_SET" '%s' "${set# }"
  printf -v "R_${name}_REF" '%s' "$ref"
  export "R_${name}_SET" "R_${name}_REF"
}
render() {      # render TEMPLATE OUT — replaces @NAME@ with $R_NAME
  awk '{
    out = ""; line = $0
    while ((i = index(line, "@")) > 0) {
      rest = substr(line, i + 1); j = index(rest, "@")
      if (j == 0) break
      name = substr(rest, 1, j - 1)
      if (name ~ /^[A-Z_]+$/ && (("R_" name) in ENVIRON)) {
        out = out substr(line, 1, i - 1) ENVIRON["R_" name]; line = substr(rest, j + 1)
      } else { out = out substr(line, 1, i); line = rest }
    }
    print out line
  }' "$1" > "$2" || die "cannot render $1"
  if grep -q '@[A-Z_]*@' "$2"; then die "unrendered placeholder in $2: $(grep -o '@[A-Z_]*@' "$2" | head -1)"; fi
}

# ---------------------------------------------------------------- readiness
# hdr_args "K: V<newline>K: V" — sets HDR_ARGS to curl -H arguments
hdr_args() {
  local h; HDR_ARGS=()
  while IFS= read -r h; do [ -n "$h" ] && HDR_ARGS+=(-H "$h"); done <<<"${1:-}"
}

# wait_ready URL PID DEADLINE_S [HEADERS] — poll until HTTP 200; 0 ready, 1 timeout, 2 died.
LAST_CODE=""
wait_ready() {
  local url=$1 pid=$2 end=$(( $(now_us) + $3 * 1000000 ))
  hdr_args "${4:-}"
  while :; do
    LAST_CODE=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "${HDR_ARGS[@]}" "$url" 2>/dev/null)
    [ "$LAST_CODE" = 200 ] && return 0
    kill -0 "$pid" 2>/dev/null || return 2
    [ "$(now_us)" -ge $end ] && return 1
    sleep 0.05
  done
}

# start_nginx NAME TEMPLATE PORT [PINNED=1] — sets NGX_PID, NGX_WORKERS
start_nginx() {
  local name=$1 tmpl=$2 port=$3 pinned=${4:-1} dir=$W/$1 rc
  local pin=(); [ "$pinned" = 1 ] && pin=("${PIN_SRV[@]}")
  mkdir -p "$dir"/{client_body,proxy,fastcgi,uwsgi,scgi}
  for _ in 1 2 3; do
    R_DIR=$dir R_PORT=$port render "$tmpl" "$dir/nginx.conf"
    "$NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/test.log" 2>&1 \
      || die "$name: nginx -t failed: $(cat "$dir/test.log")"
    "${pin[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    NGX_PID=$!
    PIDS+=("$NGX_PID")
    wait_ready "http://127.0.0.1:$port/v1/models" "$NGX_PID" 10; rc=$?
    if [ $rc = 0 ]; then
      NGX_WORKERS=$(children_of "$NGX_PID")
      [ -n "$NGX_WORKERS" ] || die "$name: no nginx worker found under master $NGX_PID"
      # shellcheck disable=SC2206
      EXTRA_PIDS+=($NGX_WORKERS)
      NGX_PORT=$port
      return 0
    fi
    stop_procs "$NGX_PID"
    if [ $rc = 2 ] && grep -q 'Address already in use' "$dir/error.log" "$dir/stdout.log" 2>/dev/null; then
      warn "$name: port $port taken, retrying"; pick_port; port=$PORT; : >"$dir/error.log"; continue
    fi
    die "$name: not ready on 127.0.0.1:$port (last HTTP code '${LAST_CODE}'): $(tail -5 "$dir/error.log" "$dir/stdout.log" 2>/dev/null)"
  done
  die "$name: could not find a free port"
}

# ---------------------------------------------------------------- meridian
# find_meridian — MERIDIAN (env, else build/meridian, built with `make build`
# when missing) -> MER_STATUS ("" when usable, else why not), MER_VERSION,
# MER_BUILT (when, and whether it is older than the sources), MER_HAS_WORKERS.
find_meridian() {
  local stale
  MERIDIAN_DEFAULT=$ROOT/build/meridian
  MERIDIAN=${MERIDIAN:-}
  MER_STATUS=""     # "" = ok, else why it is unavailable
  if [ -z "$MERIDIAN" ]; then
    MERIDIAN=$MERIDIAN_DEFAULT
    if [ ! -x "$MERIDIAN" ]; then
      log "build/meridian missing: running 'make build' (log: build/bench-build.log)"
      mkdir -p "$ROOT/build"
      if ! ( cd "$ROOT" && timeout --foreground -k 5 600 make build ) >"$ROOT/build/bench-build.log" 2>&1; then
        warn "'make build' failed (see build/bench-build.log): $(grep -m1 -iE 'error' "$ROOT/build/bench-build.log")"
        [ -x "$MERIDIAN" ] && warn "using the build/meridian that was produced anyway"
      fi
    fi
  fi
  case "$MERIDIAN" in /*) ;; *) MERIDIAN=$PWD/$MERIDIAN ;; esac
  if [ ! -x "$MERIDIAN" ]; then
    MER_STATUS="no executable $MERIDIAN"
    [ -f "$ROOT/build/bench-build.log" ] && [ "$MERIDIAN" = "$MERIDIAN_DEFAULT" ] &&
      MER_STATUS="$MER_STATUS ('make build' failed, see build/bench-build.log)"
  fi
  MER_VERSION="n/a"; MER_HAS_WORKERS=0; MER_BUILT=""; MER_LINES=""
  if [ -z "$MER_STATUS" ]; then
    MER_BUILT=", built $(date -u -r "$MERIDIAN" '+%Y-%m-%d %H:%M UTC')"
    case "$MERIDIAN" in
      "$ROOT"/*)
        stale=$(find "$ROOT/src" "$ROOT/include" -type f -name '*.[ch]' -newer "$MERIDIAN" 2>/dev/null | head -1)
        if [ -n "$stale" ]; then
          MER_BUILT="$MER_BUILT; OLDER than ${stale#"$ROOT"/} (rebuild, or the commit below does not describe it)"
          warn "$MERIDIAN is older than ${stale#"$ROOT"/}"
        fi ;;
      *) MER_BUILT="$MER_BUILT; outside this tree, the commit below may not describe it" ;;
    esac
    MER_VERSION=$(timeout 5 "$MERIDIAN" --version 2>&1 | head -1); MER_VERSION=${MER_VERSION:-unknown}
    if timeout 5 "$MERIDIAN" --help 2>&1 | grep -q -- --workers; then MER_HAS_WORKERS=1; fi
  fi
}

# start_meridian NAME PORT PINNED WORKERS [MAX_CONNECTIONS] — sets MER_PID and
# MER_IDLE_KB (VmRSS once ready, before any request but GET /healthz), or
# MER_STATUS_NOW. Its config is what the caller's `meridian_config PORT
# MAX_CONNECTIONS` prints.
start_meridian() {
  local name=$1 port=$2 pinned=$3 workers=$4 maxconn=${5:-} dir=$W/$1 rc
  local pin=(); [ "$pinned" = 1 ] && pin=("${PIN_SRV[@]}")
  # Meridian's default is one worker per core: pass the count whenever the
  # binary knows --workers, so the single-worker pass really is single-worker.
  local wargs=(); [ "$MER_HAS_WORKERS" = 1 ] && wargs=(--workers "$workers")
  mkdir -p "$dir"
  meridian_config "$port" "$maxconn" >"$dir/meridian.json" || die "$name: cannot write its config"
  MER_PID=""; MER_STATUS_NOW=""
  "${pin[@]}" "$MERIDIAN" --config "$dir/meridian.json" --listen "127.0.0.1:$port" "${wargs[@]}" \
    >"$dir/meridian.log" 2>&1 &
  MER_PID=$!
  PIDS+=("$MER_PID")
  wait_ready "http://127.0.0.1:$port/healthz" "$MER_PID" 10; rc=$?
  if [ $rc = 1 ] && grep -q "listening on 127.0.0.1:$port" "$dir/meridian.log" && [ "$LAST_CODE" != 000 ]; then
    warn "$name: GET /healthz answers $LAST_CODE, but the server says it is listening; carrying on"
    rc=0
  fi
  if [ $rc != 0 ]; then
    if [ $rc = 2 ]; then wait "$MER_PID" 2>/dev/null; MER_STATUS_NOW="exited at start (status $?)"
    else MER_STATUS_NOW="not ready within 10 s (GET /healthz: '${LAST_CODE}')"; fi
    MER_STATUS_NOW="$MER_STATUS_NOW; log: $(tail -3 "$dir/meridian.log" 2>/dev/null | tr '\n' ' ' | head -c 300)"
    stop_procs "$MER_PID"; MER_PID=""
    return 1
  fi
  MER_IDLE_KB=$(rss_kb "$MER_PID")
  MER_PORT=$port
  MER_SAYS=$(grep -m1 -o 'listening on .*' "$dir/meridian.log" 2>/dev/null)
  [ -n "$MER_SAYS" ] && MER_LINES="$MER_LINES- $name (${wargs[*]:-no --workers}): \"$MER_SAYS\"
"
  return 0
}

mib() { awk -v k="${1:-0}" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---------------------------------------------------------------- portkey
# The peer gateway: @portkey-ai/gateway from the npm registry, installed once
# into $PORTKEY_DIR (gitignored). 1.15.2 needs @hono/node-server 1.14.1 (npm
# overrides), else streamed chat and /v1/models answer 500 (Portkey-AI/gateway#1389).
PK_VERSION=1.15.2; PK_NODE_SERVER=1.14.1
PORTKEY_DIR=${PORTKEY_DIR:-$BENCH/.portkey}
PK_STATUS=""; PK_PID=""; PK_INSTALL_S=0
pkg_version() { [ -f "$1" ] && node -p "require(process.argv[1]).version" "$1" 2>/dev/null; }
install_portkey() {
  local gw=$PORTKEY_DIR/node_modules/@portkey-ai/gateway ns=$PORTKEY_DIR/node_modules/@hono/node-server t0
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    PK_STATUS="node/npm not installed (apt-get install nodejs npm)"; return 1
  fi
  if [ "$(pkg_version "$gw/package.json")" = $PK_VERSION ] && [ "$(pkg_version "$ns/package.json")" = $PK_NODE_SERVER ]; then
    return 0
  fi
  mkdir -p "$PORTKEY_DIR" || { PK_STATUS="cannot create $PORTKEY_DIR"; return 1; }
  cat >"$PORTKEY_DIR/package.json" <<EOF
{ "name": "meridian-bench-portkey", "version": "0.0.0", "private": true,
  "description": "The peer gateway of Meridian's bench/run (generated by it).",
  "dependencies": { "@portkey-ai/gateway": "$PK_VERSION" },
  "overrides": { "@hono/node-server": "$PK_NODE_SERVER" } }
EOF
  log "installing @portkey-ai/gateway@$PK_VERSION into $PORTKEY_DIR (npm install, once)"
  t0=$(now_us)
  if ! (cd "$PORTKEY_DIR" && timeout --foreground -k 5 240 npm install --no-audit --no-fund --loglevel=error) \
      >"$W/portkey-install.log" 2>&1; then
    PK_STATUS="npm install failed: $(grep -m1 -iE 'err' "$W/portkey-install.log" | head -c 200)"; return 1
  fi
  PK_INSTALL_S=$(( ($(now_us) - t0) / 1000000 ))
  log "npm install took ${PK_INSTALL_S}s (not counted in the time budget)"
  if [ "$(pkg_version "$gw/package.json")" != $PK_VERSION ] || [ "$(pkg_version "$ns/package.json")" != $PK_NODE_SERVER ]; then
    PK_STATUS="npm installed gateway $(pkg_version "$gw/package.json") / node-server $(pkg_version "$ns/package.json"), wanted $PK_VERSION / $PK_NODE_SERVER"
    return 1
  fi
}
# pk_headers BASE_URL — Portkey routes by headers: provider openai, custom host
# = the upstream's base URL (e.g. http://127.0.0.1:PORT/v1).
pk_headers() { printf 'x-portkey-provider: openai\nx-portkey-custom-host: %s' "$1"; }
# start_portkey PORT UPSTREAM_BASE_URL — sets PK_PID, or PK_STATUS (readiness:
# GET /v1/models routed to the upstream). bench/portkey-loopback.mjs makes
# its server bind 127.0.0.1 (it would listen on every interface); --headless
# skips the web console.
start_portkey() {
  local port=$1 upstream=$2 dir=$W/portkey rc
  mkdir -p "$dir"
  "${PIN_SRV[@]}" node --import "$BENCH/portkey-loopback.mjs" \
    "$PORTKEY_DIR/node_modules/@portkey-ai/gateway/build/start-server.js" --port="$port" --headless \
    >"$dir/portkey.log" 2>&1 &
  PK_PID=$!
  PIDS+=("$PK_PID")
  wait_ready "http://127.0.0.1:$port/v1/models" "$PK_PID" 30 "$(pk_headers "$upstream")"; rc=$?
  if [ $rc != 0 ]; then
    PK_STATUS="not ready within 30 s (GET /v1/models: '${LAST_CODE}'): $(tail -c 300 "$dir/portkey.log" | tr '\n' ' ')"
    stop_procs "$PK_PID"; PK_PID=""; return 1
  fi
  if command -v ss >/dev/null 2>&1 && ss -Hltn "( sport = :$port )" | awk '{print $4}' | grep -qv '^127\.'; then
    warn "portkey listens beyond 127.0.0.1: $(ss -Hltn "( sport = :$port )" | awk '{print $4}' | tr '\n' ' ')"
  fi
  PK_PORT=$port
}

# ---------------------------------------------------------------- figures
ratio() { # ratio A B
  if [ -z "${1:-}" ] || [ -z "${2:-}" ] || [ "$2" = 0 ]; then echo "–"; return; fi
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}
diff_ms() { # diff_ms A B — "+x.xxx" (A - B) or –
  if [ -z "${1:-}" ] || [ -z "${2:-}" ]; then echo "–"; return; fi
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f", a - b }'
}
verdict() { # verdict VALUE OP LIMIT — PASS / MISS / n/a
  [ -n "${1:-}" ] && [ "$1" != "–" ] || { echo "n/a"; return; }
  awk -v v="$1" -v o="$2" -v l="$3" 'BEGIN { ok = (o == "<=") ? (v <= l) : (v >= l); print ok ? "PASS" : "MISS" }'
}
