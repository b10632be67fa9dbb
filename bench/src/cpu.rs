//! Who spends the machine's CPU during a measurement: the store (DynamoDB Local's
//! JVM), the function's instances, the emulator around them (`cargo lambda watch`)
//! and this driver (the client). On a small machine they share the cores, so a
//! figure bounded by CPU is explained by this split.

use std::ops::{AddAssign, Sub};

use firehose_testkit::function::Function;
use firehose_testkit::process;

/// CPU time in clock ticks, per party.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSplit {
    pub store: u64,
    pub function: u64,
    pub emulator: u64,
    pub client: u64,
}

impl CpuSplit {
    /// Now, as cumulative ticks. `store` is DynamoDB Local's process (with its
    /// descendants) when scripts/bench named it (`BENCH_STORE_PID`).
    pub fn now(store_pid: Option<u32>, function: Option<&Function>) -> CpuSplit {
        match function {
            Some(function) => CpuSplit::of(
                store_pid,
                &function.instances(),
                Some(function.watcher_pid()),
            ),
            None => CpuSplit::of(store_pid, &[], None),
        }
    }

    /// Now, for the function processes `instances` and the emulator whose process
    /// tree starts at `emulator` (its instances, when they are in that tree, are not
    /// counted twice).
    pub fn of(store_pid: Option<u32>, instances: &[u32], emulator: Option<u32>) -> CpuSplit {
        let emulator = emulator
            .map(|root| {
                let mut pids = process::descendants(root);
                pids.push(root);
                pids.retain(|pid| !instances.contains(pid));
                process::cpu_ticks(&pids)
            })
            .unwrap_or(0);
        CpuSplit {
            store: store_pid.map(tree_ticks).unwrap_or(0),
            function: process::cpu_ticks(instances),
            emulator,
            client: process::cpu_ticks(&[std::process::id()]),
        }
    }

    /// Each party's share of `seconds` of wall-clock time, in % of one core.
    pub fn percent_over(&self, seconds: f64) -> [f64; 4] {
        let per = process::clock_ticks() as f64 * seconds.max(1e-9) / 100.0;
        [self.store, self.function, self.emulator, self.client].map(|t| t as f64 / per)
    }

    /// Each party's share in seconds, divided by `runs`.
    pub fn seconds_per(&self, runs: usize) -> [f64; 4] {
        let per = process::clock_ticks() as f64 * runs.max(1) as f64;
        [self.store, self.function, self.emulator, self.client].map(|t| t as f64 / per)
    }
}

impl Sub for CpuSplit {
    type Output = CpuSplit;

    fn sub(self, earlier: CpuSplit) -> CpuSplit {
        CpuSplit {
            store: self.store.saturating_sub(earlier.store),
            function: self.function.saturating_sub(earlier.function),
            emulator: self.emulator.saturating_sub(earlier.emulator),
            client: self.client.saturating_sub(earlier.client),
        }
    }
}

impl AddAssign for CpuSplit {
    fn add_assign(&mut self, other: CpuSplit) {
        self.store += other.store;
        self.function += other.function;
        self.emulator += other.emulator;
        self.client += other.client;
    }
}

fn tree_ticks(root: u32) -> u64 {
    let mut pids = process::descendants(root);
    pids.push(root);
    process::cpu_ticks(&pids)
}
