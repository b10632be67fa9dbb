//! Waiting for the function to settle between measurements, read from its log.

use std::time::Duration;

use firehose_testkit::function::Function;

use crate::BoxError;

/// Waits until `closed_streams` streams have logged their end (the access line a
/// stream writes once, when it ends) and every instance
/// the watcher started has finished its init, so that a measurement that follows
/// shares the machine with neither a departing stream nor an instance still
/// starting (`cargo lambda watch` starts spare instances in the background).
pub async fn wait_idle(function: &Function, closed_streams: usize) -> Result<(), BoxError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let log = function.logs();
        let started = log.matches("starting lambda function instance").count();
        let initialised = log.matches("firehose starting").count();
        let closed = log.lines().filter(|line| ends_a_stream(line)).count();
        if started > 0 && initialised >= started && closed >= closed_streams {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the function did not settle ({initialised} of {started} instances \
                 initialised, {closed} of {closed_streams} streams closed); see {}",
                function.log_path.display()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a log line is the access line of a stream that ended (by itself or because
/// its client left), in the text or the JSON log format.
fn ends_a_stream(line: &str) -> bool {
    line.contains("firehose::access")
        && line.contains("/api/v1/bounties/stream")
        && (line.contains("completed") || line.contains("client_gone"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_ends_at_its_access_line_in_either_format() {
        let text = r#"2026-12-02T05:00:00Z  INFO request{request_id=abc method=GET path=/api/v1/bounties/stream}: firehose::access: request request_id=abc method=GET path=/api/v1/bounties/stream client=127.0.0.1 status=200 filter="{}" duration_ms=3000 events=3 bounties=1 errors=0 ended="completed""#;
        let json = r#"{"level":"INFO","fields":{"message":"request","path":"/api/v1/bounties/stream","status":200,"ended":"client_gone"},"target":"firehose::access"}"#;
        assert!(ends_a_stream(text));
        assert!(ends_a_stream(json));
        let answered =
            r#"{"fields":{"path":"/api/v1/tasks","ended":"answered"},"target":"firehose::access"}"#;
        assert!(!ends_a_stream(answered));
    }
}
