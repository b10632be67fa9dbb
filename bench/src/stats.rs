//! Percentiles over latency samples.

use std::time::Duration;

/// p50, p90, p99 and max of a set of samples (nearest-rank percentiles).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let max = *sorted.last()?;
        Some(Summary {
            count: sorted.len(),
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            max,
        })
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[Duration], pct: f64) -> Duration {
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median (nearest rank) of the samples, if any.
pub fn median(samples: &[Duration]) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    (!sorted.is_empty()).then(|| percentile(&sorted, 50.0))
}

pub fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let samples: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        let summary = Summary::of(&samples).expect("samples");
        assert_eq!(summary.p50, Duration::from_millis(100));
        assert_eq!(summary.p90, Duration::from_millis(180));
        assert_eq!(summary.p99, Duration::from_millis(198));
        assert_eq!(summary.max, Duration::from_millis(200));
        assert!(Summary::of(&[]).is_none());
        let odd = [300, 100, 200].map(Duration::from_millis);
        assert_eq!(median(&odd), Some(Duration::from_millis(200)));
        assert_eq!(median(&[]), None);
    }
}
