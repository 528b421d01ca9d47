//! Aggregate buckets made from raw samples (`db::aggregates`: which tables, columns and buckets),
//! one sample at a time: per column the sum and count of the values present (for the mean), the
//! lowest and the highest, and per bucket the samples it was made from.
//!
//! Like an hour's state (`device_hours`), a bucket depends only on its own samples folded in time
//! order, so a bucket the roller keeps and extends as samples arrive equals one made at once from
//! the same samples; a sample that arrives before the last one folded makes the bucket again from
//! its raw samples. The carried ids (parents) are those of the bucket's first sample. Pure: no
//! clock, no database.

use chrono_tz::Tz;

use super::figures::Stat;
use crate::db::aggregates::{
    AggregateInput, AggregateOutput, AggregateTable, BUCKET_MS, How, MAX_COLUMNS, MAX_PARENTS,
    Width,
};

/// One device's bucket [start, end), as far as its samples folded in go.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AggregateBucket {
    pub(super) device: String,
    parents: [String; MAX_PARENTS],
    pub(super) start: i64,
    pub(super) end: i64,
    samples: i32,
    columns: [Stat; MAX_COLUMNS],
    /// The time of the last sample folded in.
    pub(super) last_ts: i64,
}

impl AggregateBucket {
    pub(super) fn new(first: &AggregateInput, (start, end): (i64, i64)) -> AggregateBucket {
        AggregateBucket {
            device: first.device.clone(),
            parents: first.parents.clone(),
            start,
            end,
            samples: 0,
            columns: std::array::from_fn(|_| Stat::default()),
            last_ts: i64::MIN,
        }
    }

    /// Folds in the next sample of the bucket (later than every one folded before).
    pub(super) fn fold(&mut self, input: &AggregateInput) {
        self.samples += 1;
        self.last_ts = input.ts;
        for (column, value) in self.columns.iter_mut().zip(input.values) {
            column.add(value);
        }
    }

    /// The row `table` stores for the bucket.
    pub(super) fn output(&self, table: &AggregateTable) -> AggregateOutput {
        let mut values = [None; MAX_COLUMNS];
        for ((value, column), (_, how, _)) in
            values.iter_mut().zip(&self.columns).zip(table.columns)
        {
            *value = match how {
                How::Mean => column.mean(),
                How::Highest => column.max(),
                How::Lowest => column.min(),
            };
        }
        AggregateOutput {
            device: self.device.clone(),
            parents: self.parents.clone(),
            ts: self.start,
            samples: self.samples,
            values,
        }
    }
}

/// The bucket of `table` a sample at `ts` falls in: its 5 minutes, or its local hour in `tz`.
pub(super) fn bucket_of(table: &AggregateTable, tz: Tz, ts: i64) -> (i64, i64) {
    match table.width {
        Width::FiveMinutes => {
            let start = ts.div_euclid(BUCKET_MS) * BUCKET_MS;
            (start, start + BUCKET_MS)
        }
        Width::LocalHour => {
            let hour = crate::local_time::hour_of(tz, ts);
            (hour.start, hour.end)
        }
    }
}

/// The buckets of `inputs` (in device, then time order), in the same order.
pub(super) fn buckets(
    table: &AggregateTable,
    tz: Tz,
    inputs: &[AggregateInput],
) -> Vec<AggregateBucket> {
    let mut made: Vec<AggregateBucket> = Vec::new();
    for input in inputs {
        match made.last_mut() {
            Some(bucket)
                if bucket.device == input.device
                    && input.ts >= bucket.start
                    && input.ts < bucket.end =>
            {
                bucket.fold(input)
            }
            _ => {
                let mut bucket = AggregateBucket::new(input, bucket_of(table, tz, input.ts));
                bucket.fold(input);
                made.push(bucket);
            }
        }
    }
    made
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::aggregates::{AggregateKind, table_of};

    fn input(device: &str, ts: i64, voltage: Option<f64>) -> AggregateInput {
        let mut values = [None; MAX_COLUMNS];
        // The cell table's columns: min, max and mean of the voltage first.
        values[0] = voltage;
        values[1] = voltage;
        values[2] = voltage;
        AggregateInput {
            device: device.into(),
            parents: ["b".into(), "p".into(), "s".into()],
            ts,
            values,
        }
    }

    #[test]
    fn a_bucket_folded_as_samples_arrive_equals_one_made_at_once() {
        let table = table_of(AggregateKind::Cell);
        let tz = chrono_tz::UTC;
        let inputs: Vec<AggregateInput> = (0..200)
            .map(|i| {
                input(
                    "c1",
                    i * 61_000,
                    (i % 7 != 0).then(|| 3.3 + (i % 11) as f64 / 1000.0),
                )
            })
            .collect();
        let made = buckets(table, tz, &inputs);
        assert_eq!(made.len(), 4, "200 minutes in 4 hours");
        let mut kept = AggregateBucket::new(&inputs[0], bucket_of(table, tz, 0));
        for input in inputs.iter().take_while(|i| i.ts < 3_600_000) {
            kept.fold(input);
        }
        assert_eq!(kept, made[0]);
        let out = made[0].output(table);
        let hour: Vec<f64> = inputs
            .iter()
            .filter(|i| i.ts < 3_600_000)
            .filter_map(|i| i.values[0])
            .collect();
        assert_eq!(out.samples, 60);
        assert_eq!(out.values[0], hour.iter().copied().reduce(f64::min));
        assert_eq!(out.values[1], hour.iter().copied().reduce(f64::max));
        assert_eq!(
            out.values[2],
            Some(hour.iter().sum::<f64>() / hour.len() as f64)
        );
        assert_eq!(
            out.values[3], None,
            "no sample had a temperature: absent, not 0"
        );
    }
}
