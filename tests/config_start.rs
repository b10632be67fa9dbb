//! A bad setting stops the function at start with a message naming the variable,
//! before it serves anything (and without a panic).

use std::process::Command;

#[test]
fn a_bad_setting_stops_the_function_with_a_clear_message() {
    for (name, value) in [
        ("POLL_INTERVAL_MS", "fast"),
        ("STREAM_MAX_SECONDS", "900"),
        ("FEED_SHARDS", "0"),
        ("PUBLISH_API_KEY_SHA256", "secret-key-not-a-hash"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_firehose-lambda"))
            .env(name, value)
            .output()
            .expect("run the function binary");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(
            stderr.contains("configuration error") && stderr.contains(name),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        // The key list is not echoed back, even when it is malformed.
        assert!(!stderr.contains("secret-key"), "{stderr}");
    }
}
