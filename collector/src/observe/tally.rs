//! Data-quality tallies: per device, the polls since the last batch and how they ended, and the
//! values left out by reason. They travel to the hub inside the batches (`PollTally`), so they are
//! as durable and exactly-once as the readings.

use std::collections::BTreeMap;

use solarhub_proto::time::timestamp;
use solarhub_proto::v1 as proto;

use super::{PollRecord, PollResult};

#[derive(Debug, Default)]
struct DeviceTally {
    since: i64,
    until: i64,
    polls: u32,
    answered: u32,
    timeouts: u32,
    exceptions: u32,
    other_failures: u32,
    dropped: BTreeMap<&'static str, u32>,
}

impl DeviceTally {
    fn starting(at: i64) -> DeviceTally {
        DeviceTally {
            since: at,
            until: at,
            ..DeviceTally::default()
        }
    }

    fn seen(&mut self, at: i64) {
        self.since = self.since.min(at);
        self.until = self.until.max(at);
    }
}

#[derive(Debug, Default)]
pub struct Tally {
    devices: BTreeMap<String, DeviceTally>,
}

impl Tally {
    fn device(&mut self, device_id: &str, at: i64) -> &mut DeviceTally {
        let tally = self
            .devices
            .entry(device_id.to_owned())
            .or_insert_with(|| DeviceTally::starting(at));
        tally.seen(at);
        tally
    }

    pub fn polled(&mut self, record: &PollRecord) {
        let tally = self.device(&record.device_id, record.at);
        tally.polls += 1;
        match record.result {
            PollResult::Answered => tally.answered += 1,
            PollResult::Timeout => tally.timeouts += 1,
            PollResult::Exception => tally.exceptions += 1,
            PollResult::Failed => tally.other_failures += 1,
        }
    }

    pub fn dropped(&mut self, device_id: &str, reason: &'static str, at: i64) {
        *self
            .device(device_id, at)
            .dropped
            .entry(reason)
            .or_default() += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Adds tallies taken earlier back in (their batch could not be stored).
    pub fn restore(&mut self, tallies: Vec<proto::PollTally>) {
        use solarhub_proto::time::millis;
        for t in tallies {
            let since = t.since.as_ref().map_or(0, millis);
            let until = t.until.as_ref().map_or(since, millis);
            let device = self.device(&t.device_id, since);
            device.seen(until);
            device.polls += t.polls;
            device.answered += t.answered;
            device.timeouts += t.timeouts;
            device.exceptions += t.exceptions;
            device.other_failures += t.other_failures;
            for (reason, n) in t.dropped {
                let Some(known) = solarhub_proto::contract::quality::DROP_REASONS
                    .iter()
                    .find(|r| **r == reason)
                else {
                    continue;
                };
                *device.dropped.entry(known).or_default() += n;
            }
        }
    }

    pub fn take(&mut self) -> Vec<proto::PollTally> {
        std::mem::take(&mut self.devices)
            .into_iter()
            .map(|(device_id, t)| proto::PollTally {
                device_id,
                since: Some(timestamp(t.since)),
                until: Some(timestamp(t.until)),
                polls: t.polls,
                answered: t.answered,
                timeouts: t.timeouts,
                exceptions: t.exceptions,
                other_failures: t.other_failures,
                dropped: t
                    .dropped
                    .into_iter()
                    .map(|(reason, n)| (reason.to_owned(), n))
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_tally_counts_each_poll_once_and_starts_over_when_taken() {
        let mut tally = Tally::default();
        let poll = |result, at| PollRecord {
            bus: "tcp 127.0.0.1:502".into(),
            device_id: "inv1".into(),
            result,
            duration: Duration::from_millis(20),
            at,
        };
        tally.polled(&poll(PollResult::Answered, 2_000));
        tally.polled(&poll(PollResult::Timeout, 1_000));
        tally.dropped("inv1", "sentinel", 2_000);
        tally.dropped("inv1", "sentinel", 3_000);
        let taken = tally.take();
        assert_eq!(taken.len(), 1);
        let inv1 = &taken[0];
        assert_eq!((inv1.polls, inv1.answered, inv1.timeouts), (2, 1, 1));
        assert_eq!(inv1.dropped.get("sentinel"), Some(&2));
        assert_eq!(inv1.since, Some(timestamp(1_000)));
        assert_eq!(inv1.until, Some(timestamp(3_000)));
        assert!(tally.is_empty() && tally.take().is_empty());
    }
}
