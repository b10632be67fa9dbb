# shellcheck shell=bash
# Processes: background groups started and stopped with their whole tree, a
# foreground group a signal reaches, and cleanup on exit.
# Part of scripts/lib.sh, which sets the paths it uses and sources it: source that.

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
