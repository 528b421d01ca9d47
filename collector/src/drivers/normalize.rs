//! From decoded registers to a reading of canonical fields (DESIGN §3.2), with every implausible value
//! dropped and counted: a sentinel, a value outside the register's range, power far beyond the
//! device's rating, a counter running backwards. A dropped or unread value is missing — never zero.

use std::collections::{BTreeMap, HashMap};

use crate::drivers::codec::RegisterValue;
use crate::drivers::reading::{DropReason, Reading};
use crate::drivers::register_map::RegisterMap;

/// How far above its rating a power may read before it is called implausible.
pub const RATING_MARGIN: f64 = 1.5;

/// Normalises the readings of one device; remembers counters between polls and counts drops.
#[derive(Debug, Default)]
pub struct Normalizer {
    last_counter: HashMap<String, f64>,
    drops: BTreeMap<(String, DropReason), u64>,
}

impl Normalizer {
    /// Every drop so far, per field and reason.
    pub fn drop_counts(&self) -> &BTreeMap<(String, DropReason), u64> {
        &self.drops
    }

    pub fn normalize(
        &mut self,
        map: &RegisterMap,
        registers: &BTreeMap<String, RegisterValue>,
        device_id: &str,
        adapter_id: &str,
        ts: i64,
    ) -> Reading {
        let mut reading = Reading {
            device_id: device_id.to_owned(),
            adapter_id: adapter_id.to_owned(),
            ts,
            fields: BTreeMap::new(),
            text: BTreeMap::new(),
            dropped: BTreeMap::new(),
            batteries: Vec::new(),
        };
        // Register-level plausibility first: a bad register spoils every field made from it.
        let mut values: BTreeMap<&str, f64> = BTreeMap::new();
        let mut bad: BTreeMap<&str, DropReason> = BTreeMap::new();
        for register in &map.registers {
            match registers.get(&register.name) {
                Some(RegisterValue::Number { value, .. }) => {
                    let below = register.min.is_some_and(|min| *value < min);
                    let above = register.max.is_some_and(|max| *value > max);
                    if below || above {
                        bad.insert(&register.name, DropReason::OutOfRange);
                    } else {
                        values.insert(&register.name, *value);
                    }
                }
                Some(RegisterValue::Sentinel { .. }) => {
                    bad.insert(&register.name, DropReason::Sentinel);
                }
                Some(RegisterValue::Text(text)) => {
                    reading.text.insert(register.name.clone(), text.clone());
                }
                None => {}
            }
        }
        let rating = map
            .rated_power_register
            .as_deref()
            .and_then(|name| values.get(name).copied())
            .filter(|r| *r > 0.0);

        for (field, rule) in &map.fields {
            let sources: Vec<&str> = rule
                .register
                .iter()
                .chain(rule.sum.iter())
                .map(String::as_str)
                .collect();
            let spoiled = sources
                .iter()
                .copied()
                .chain(rule.sign_of.as_deref())
                .find_map(|source| bad.get(source));
            if let Some(reason) = spoiled {
                self.drop(&mut reading, field, *reason);
                continue;
            }
            let Some(parts) = sources
                .iter()
                .map(|s| values.get(s).copied())
                .collect::<Option<Vec<f64>>>()
            else {
                continue; // not read this poll: missing, not zero
            };
            // Sums and unit factors keep the finest resolution of their registers.
            let resolution = sources
                .iter()
                .filter_map(|s| map.register(s))
                .map(|r| r.resolution() * rule.factor.abs())
                .fold(f64::INFINITY, f64::min);
            let mut value = crate::drivers::codec::round_to_resolution(
                parts.iter().sum::<f64>() * rule.factor,
                resolution,
            );
            if let Some(sign_source) = &rule.sign_of {
                match values.get(sign_source.as_str()) {
                    Some(sign) if *sign < 0.0 => value = -value.abs(),
                    Some(_) => value = value.abs(),
                    None => continue,
                }
            }
            if field.ends_with("power_w")
                && field != "rated_power_w"
                && let Some(rating) = rating
                && value.abs() > rating * RATING_MARGIN
            {
                self.drop(&mut reading, field, DropReason::AboveRating);
                continue;
            }
            // Whatever the map allows, nothing beyond what the field's unit can be (a u32
            // counter read as 0xFFFF0000 is 4 TWh; decoder fuzzing).
            let implausible = rule
                .plausible
                .as_ref()
                .is_some_and(|range| !range.contains(&value));
            if implausible || !value.is_finite() {
                self.drop(&mut reading, field, DropReason::OutOfRange);
                continue;
            }
            if rule.counter {
                if let Some(last) = self.last_counter.get(field)
                    && value < *last
                {
                    // A reset, a rollover or a bad read: not this poll's number. The counter
                    // is followed from here on, so a real reset is only dropped once.
                    self.last_counter.insert(field.clone(), value);
                    self.drop(&mut reading, field, DropReason::CounterBackwards);
                    continue;
                }
                self.last_counter.insert(field.clone(), value);
            }
            reading.fields.insert(field.clone(), value);
        }
        reading
    }

    /// Counts a value dropped outside the map-driven path (protocol drivers).
    pub fn count_drop(&mut self, reading: &mut Reading, field: &str, reason: DropReason) {
        self.drop(reading, field, reason);
    }

    fn drop(&mut self, reading: &mut Reading, field: &str, reason: DropReason) {
        *self.drops.entry((field.to_owned(), reason)).or_default() += 1;
        reading.dropped.insert(field.to_owned(), reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::register_map::builtin_map;

    fn number(value: f64, scale: f64) -> RegisterValue {
        RegisterValue::Number {
            raw: (value / scale).round() as i64,
            value,
        }
    }

    #[test]
    fn power_far_beyond_the_rating_is_dropped_and_counted() {
        let map = builtin_map("powdrive").unwrap();
        let mut registers = BTreeMap::new();
        registers.insert("rated_power_w".to_owned(), number(5000.0, 0.1));
        registers.insert("pv1_power_w".to_owned(), number(9000.0, 1.0));
        registers.insert("pv2_power_w".to_owned(), number(100.0, 1.0));
        registers.insert("load_power_w".to_owned(), number(7400.0, 1.0));
        let mut normalizer = Normalizer::default();
        let reading = normalizer.normalize(&map, &registers, "inv", "inv.adapter", 0);
        // 9100 W of PV on a 5 kW inverter is beyond 1.5 × its rating; 7400 W of load is not.
        assert_eq!(
            reading.dropped.get("pv_power_w"),
            Some(&DropReason::AboveRating)
        );
        assert_eq!(reading.fields.get("load_power_w"), Some(&7400.0));
        assert_eq!(
            normalizer
                .drop_counts()
                .get(&("pv_power_w".to_owned(), DropReason::AboveRating)),
            Some(&1)
        );
        // Fields whose registers were not read are simply absent.
        assert!(
            !reading.fields.contains_key("grid_power_w")
                && !reading.dropped.contains_key("grid_power_w")
        );
    }
}
