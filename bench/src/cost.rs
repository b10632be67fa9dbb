//! The cost model's arithmetic (the formulas are explained in docs/benchmarks.md).
//! Prices: AWS us-east-1 list prices, see [`PRICES_AS_OF`]; the managed model's
//! instance price and fee are sourced in docs/benchmarks.md ("Cost model").

/// When the prices below were taken from AWS's public pricing pages.
pub const PRICES_AS_OF: &str = "2026-11-22";
/// Lambda duration on arm64 (Graviton), per GB-second (first pricing tier).
pub const LAMBDA_ARM64_GB_SECOND: f64 = 0.000_013_333_4;
/// Lambda requests, per request ($0.20 per million).
pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
/// Lambda response streaming, per GB streamed beyond the first 6 MB of a response.
pub const LAMBDA_STREAMED_GB: f64 = 0.008;
/// Data transfer out to the internet, per GB (first 10 TB per month).
pub const TRANSFER_OUT_GB: f64 = 0.09;
/// DynamoDB on-demand read request unit ($0.125 per million).
pub const DYNAMODB_RRU: f64 = 0.125 / 1e6;
/// The template's function: 128 MB, arm64.
pub const MEMORY_GB: f64 = 128.0 / 1024.0;
/// The default STREAM_MAX_SECONDS: one invocation per stream per this many seconds.
pub const STREAM_SECONDS: f64 = 270.0;
const GB: f64 = 1024.0 * 1024.0 * 1024.0;

/// DynamoDB's size of one feed entry: attribute names plus values (pk `feed#N`, a
/// 26-byte sk, seq, the 26-byte id, the bounty JSON, expires_at).
pub fn item_bytes(bounty_json: &str) -> usize {
    (2 + 6) + (2 + 26) + (3 + 4) + (2 + 26) + (6 + bounty_json.len()) + (10 + 6)
}

#[derive(Debug, Clone, Copy)]
pub struct CostModel {
    pub hour_lambda_duration: f64,
    pub hour_lambda_requests: f64,
    pub hour_dynamodb: f64,
    pub million_transfer: f64,
    pub million_streaming: f64,
    pub million_dynamodb: f64,
}

impl CostModel {
    /// `queries_per_minute`: DynamoDB requests of one idle stream (each an empty
    /// consistent Query: 1 RRU); `bytes_per_event`: a bounty frame on the wire;
    /// `item_bytes`: one stored entry (read at 4 KB per RRU when read in pages).
    pub fn new(queries_per_minute: f64, bytes_per_event: f64, item_bytes: usize) -> CostModel {
        let million_gb = 1e6 * bytes_per_event / GB;
        CostModel {
            hour_lambda_duration: 3600.0 * MEMORY_GB * LAMBDA_ARM64_GB_SECOND,
            hour_lambda_requests: 3600.0 / STREAM_SECONDS * LAMBDA_REQUEST,
            hour_dynamodb: queries_per_minute * 60.0 * DYNAMODB_RRU,
            million_transfer: million_gb * TRANSFER_OUT_GB,
            million_streaming: million_gb * LAMBDA_STREAMED_GB,
            million_dynamodb: 1e6 * item_bytes as f64 / 4096.0 * DYNAMODB_RRU,
        }
    }

    pub fn per_subscriber_hour(&self) -> f64 {
        self.hour_lambda_duration + self.hour_lambda_requests + self.hour_dynamodb
    }

    pub fn per_million_events(&self) -> f64 {
        self.million_transfer + self.million_streaming + self.million_dynamodb
    }
}

/// Lambda Managed Instances: the instance the model assumes, an arm64 (Graviton3)
/// m7g.large (2 vCPU, 8 GiB), on-demand Linux in us-east-1, per hour.
pub const INSTANCE_TYPE: &str = "m7g.large";
pub const INSTANCE_HOUR: f64 = 0.0816;
/// The management fee on top of the instance's on-demand price.
pub const MANAGEMENT_FEE: f64 = 0.15;
/// AWS's cap on the invocations one managed execution environment serves at once
/// (`PerExecutionEnvironmentMaxConcurrency`, 1 to 1,600).
pub const MAX_CONCURRENCY_CAP: usize = 1600;

/// Seconds between two reads of an open stream's lease (superseding): half the
/// default heartbeat (15 s). Each read is of one small item, consistent: 1 RRU, in a
/// BatchGetItem as in a GetItem (a batch bills every item it reads on its own).
pub const LEASE_CHECK_SECONDS: f64 = 7.5;

/// Per subscriber-hour on Lambda Managed Instances: one execution environment per
/// instance serving `streams` idle streams at once, which share the process's
/// reads of the log (`queries_per_second`, measured for the whole process) and read
/// their leases in batches (one RRU per stream per [`LEASE_CHECK_SECONDS`]; the
/// batching saves requests, not read units).
#[derive(Debug, Clone, Copy)]
pub struct ManagedCost {
    pub streams: usize,
    pub hour_instance: f64,
    pub hour_fee: f64,
    pub hour_requests: f64,
    /// The shared reads of the log, per subscriber-hour.
    pub hour_dynamodb: f64,
    /// The lease reads, per subscriber-hour.
    pub hour_leases: f64,
}

impl ManagedCost {
    pub fn new(streams: usize, queries_per_second: f64) -> ManagedCost {
        let per = streams.max(1) as f64;
        ManagedCost {
            streams,
            hour_instance: INSTANCE_HOUR / per,
            hour_fee: INSTANCE_HOUR * MANAGEMENT_FEE / per,
            // Requests are billed per invocation as on classic Lambda.
            hour_requests: 3600.0 / STREAM_SECONDS * LAMBDA_REQUEST,
            hour_dynamodb: queries_per_second * 3600.0 * DYNAMODB_RRU / per,
            hour_leases: 3600.0 / LEASE_CHECK_SECONDS * DYNAMODB_RRU,
        }
    }

    /// Lease reads per second of the whole process (each 1 RRU).
    pub fn lease_reads_per_second(&self) -> f64 {
        self.streams as f64 / LEASE_CHECK_SECONDS
    }

    pub fn per_subscriber_hour(&self) -> f64 {
        self.hour_instance
            + self.hour_fee
            + self.hour_requests
            + self.hour_dynamodb
            + self.hour_leases
    }
}
