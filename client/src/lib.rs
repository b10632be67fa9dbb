//! Client SDK for firehose: arrives with the clients issue.
