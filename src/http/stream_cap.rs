//! The stream cap at the HTTP edge: admission before any stream byte (429 over the
//! cap) for the request's client ([`super::client_ip`]), and holding the lease for
//! exactly as long as the response body lives.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use lambda_http::Request;

use super::client_ip::client_of;
use super::{ApiError, App};
use crate::cursor::StreamTag;
use crate::store::StreamLeases;
use crate::stream_cap::{admit_resuming, Admission, CapSettings, Lease};

/// Takes a slot for a new stream of this request's client, or refuses with 429. A
/// stream resuming from a cursor that one of the client's open streams issued (`from`)
/// takes over that stream's slot, and supersedes it.
pub async fn admit_stream<S: StreamLeases>(
    app: &App<S>,
    req: &Request,
    from: Option<&StreamTag>,
) -> Result<Lease<S>, ApiError> {
    let settings = CapSettings {
        max_per_client: app.config.max_streams_per_client,
        stream_max: app.config.stream_max,
        grace: app.config.stream_lease_grace,
    };
    let client = client_of(req);
    match admit_resuming(
        app.store.clone(),
        &client,
        &settings,
        from,
        Some(&app.open_streams),
    )
    .await?
    {
        Admission::Admitted(lease) => Ok(lease),
        Admission::Refused { retry_after } => {
            tracing::warn!(
                client,
                limit = settings.max_per_client,
                "too many open streams"
            );
            Err(ApiError::TooManyStreams {
                limit: settings.max_per_client,
                retry_after_s: retry_after.as_secs().max(1),
            })
        }
    }
}

/// How long the end of a stream waits for its slot to be freed: long enough for a store
/// that answers (so the client's reconnect, which follows at once, finds its slot
/// free), short enough that a hanging store does not hold a finished stream open. Past
/// it the release goes on in the background (the lease's drop), or the lease lapses.
const RELEASE_WAIT: Duration = Duration::from_secs(1);

/// The stream's frames, then the lease's release once the stream has ended by itself.
/// If the frames are dropped first (the client went away), the lease's drop releases it.
pub fn hold<T: Send + 'static, L: StreamLeases>(
    frames: impl Stream<Item = T> + Send + 'static,
    lease: Lease<L>,
) -> impl Stream<Item = T> + Send + 'static {
    async_stream::stream! {
        let mut frames = std::pin::pin!(frames);
        while let Some(frame) = frames.next().await {
            yield frame;
        }
        if tokio::time::timeout(RELEASE_WAIT, lease.release()).await.is_err() {
            tracing::warn!(wait_ms = RELEASE_WAIT.as_millis() as u64, "the store is slow to free the stream's slot; the stream ends without waiting");
        }
    }
}
