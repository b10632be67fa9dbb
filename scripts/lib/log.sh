# shellcheck shell=bash
# Output: messages on stderr (so that functions printing a value work in $(...)),
# and quiet runs of noisy commands.
# Part of scripts/lib.sh, which sets the paths it uses and sources it: source that.

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
