# shellcheck shell=bash
# Loopback ports and HTTP: free ports, and waiting until something answers.
# Part of scripts/lib.sh, which sets the paths it uses and sources it: source that.

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
