//! Capped exponential back-off, the one retry rhythm of the collector: devices that stay silent,
//! buses and serial lines that will not open, a hub that does not answer.

use std::time::Duration;

/// The cap of every back-off that does not choose its own.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Waits `first` after the first failure, then twice as long after each further one, up to `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// A failure: how long to wait before the next attempt.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(self.max);
        wait
    }

    /// A success: the next failure waits `first` again.
    pub fn succeeded(&mut self) {
        self.next = self.first;
    }

    /// A random wait between half and all of `wait`, so that many clients retrying together spread out.
    pub fn jittered(wait: Duration) -> Duration {
        let nanos = u64::from(chrono::Utc::now().timestamp_subsec_nanos());
        let half = wait / 2;
        half + Duration::from_nanos(nanos % (half.as_nanos().max(1) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_starts_over_after_a_success() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(200), ms(1000));
        let waits: Vec<_> = (0..5).map(|_| backoff.failed()).collect();
        assert_eq!(waits, [ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), ms(200));
    }
}
