//! Prometheus metrics of live streams: how many are open, how much audio they carried,
//! and how long finals took (a final's sending time minus the arrival of its last sample).

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds of the final-latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 9] = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];

#[derive(Default)]
pub struct StreamMetrics {
    open: AtomicI64,
    opened_total: AtomicU64,
    refused_total: AtomicU64,
    /// Audio received, in 16 kHz samples.
    samples_total: AtomicU64,
    latency_counts: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    /// Sum of latencies in microseconds.
    latency_sum_us: AtomicU64,
}

impl StreamMetrics {
    pub fn stream_opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.opened_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn stream_refused(&self) {
        self.refused_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn audio_received(&self, samples: usize) {
        self.samples_total
            .fetch_add(samples as u64, Ordering::Relaxed);
    }

    pub fn final_latency(&self, seconds: f64) {
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_counts) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((seconds.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "# HELP hark_streams_open Live transcription streams open now.\n\
             # TYPE hark_streams_open gauge\n\
             hark_streams_open {}\n\
             # HELP hark_streams_opened_total Live transcription streams opened.\n\
             # TYPE hark_streams_opened_total counter\n\
             hark_streams_opened_total {}\n\
             # HELP hark_streams_refused_total Streams refused by a cap or for capacity.\n\
             # TYPE hark_streams_refused_total counter\n\
             hark_streams_refused_total {}\n\
             # HELP hark_stream_audio_seconds_total Seconds of audio received by streams.\n\
             # TYPE hark_stream_audio_seconds_total counter\n\
             hark_stream_audio_seconds_total {:.3}\n\
             # HELP hark_stream_final_latency_seconds From a final word's last sample arriving to the final being sent.\n\
             # TYPE hark_stream_final_latency_seconds histogram\n",
            self.open.load(Ordering::Relaxed).max(0),
            self.opened_total.load(Ordering::Relaxed),
            self.refused_total.load(Ordering::Relaxed),
            self.samples_total.load(Ordering::Relaxed) as f64 / 16_000.0,
        );
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_counts) {
            let _ = writeln!(
                out,
                "hark_stream_final_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "hark_stream_final_latency_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             hark_stream_final_latency_seconds_sum {:.6}\n\
             hark_stream_final_latency_seconds_count {count}\n",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fill_cumulative_buckets() {
        let m = StreamMetrics::default();
        m.final_latency(0.4);
        m.final_latency(2.5);
        let text = m.render();
        assert!(text.contains("hark_stream_final_latency_seconds_bucket{le=\"0.25\"} 0"));
        assert!(text.contains("hark_stream_final_latency_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("hark_stream_final_latency_seconds_bucket{le=\"3\"} 2"));
        assert!(text.contains("hark_stream_final_latency_seconds_count 2"));
    }
}
