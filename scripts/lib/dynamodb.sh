# shellcheck shell=bash
# DynamoDB Local: the AWS SDK's variables for it, and starting it.
# Part of scripts/lib.sh, which sets the paths it uses and sources it: source that.

# Credentials and region for DynamoDB Local (it accepts any; -sharedDb ignores them).
LOCAL_AWS_REGION="us-east-1"
LOCAL_AWS_ACCESS_KEY_ID="local"
LOCAL_AWS_SECRET_ACCESS_KEY="local"

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
