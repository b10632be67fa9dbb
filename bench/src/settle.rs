//! Waiting for the function to settle between measurements, read from its log.

use std::time::Duration;

use firehose_testkit::function::Function;

use crate::BoxError;

/// Waits until `closed_streams` streams have logged their end and every instance
/// the watcher started has finished its init, so that a measurement that follows
/// shares the machine with neither a departing stream nor an instance still
/// starting (`cargo lambda watch` starts spare instances in the background).
pub async fn wait_idle(function: &Function, closed_streams: usize) -> Result<(), BoxError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let log = function.logs();
        let started = log.matches("starting lambda function instance").count();
        let initialised = log.matches("firehose starting").count();
        let closed = log.matches("stream closed").count();
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
