//! The writable settings of a register map (#28, DESIGN §12): what may be written, to which
//! register (or which bits of it), in which unit and scale, within which limits or among which
//! named values, and whether the declaration is verified. Nothing else can be written, a value
//! outside its limits is refused (never clamped), and a setting whose declaration is not verified
//! is refused with the reason it is not (public sources that disagree, limits nobody confirmed).
//!
//! This module owns the declarations and turns a requested value into the register write it needs
//! ([`Write`]); it never talks to a device.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::words::{WordOrder, combine, split};

/// How a setting's text is encoded in its register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// A number: the value divided by `scale`.
    #[default]
    Number,
    /// A time of day `HH:MM`, stored as `HH * 100 + MM` (Deye-family time-of-use windows).
    Hhmm,
}

/// One writable setting.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    pub name: String,
    /// The holding register written (the first, for a value of two registers).
    pub register: u16,
    /// Registers the value spans: 1, or 2 for a 32-bit value (in the map's word order, written
    /// together in one request).
    #[serde(default = "one_word")]
    pub words: u8,
    /// The bits of the register the setting occupies, first and last (a read-modify-write keeps
    /// the others); the whole register when absent.
    #[serde(default)]
    pub bits: Option<[u8; 2]>,
    #[serde(default)]
    pub encoding: Encoding,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub unit: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Named values and their raw register values (an enum).
    #[serde(default)]
    pub values: BTreeMap<String, u16>,
    /// Whether the register, its meaning and its limits are confirmed (by agreeing public sources
    /// or on hardware).
    pub verified: bool,
    /// Why not, when not: what disagrees, what nobody confirmed.
    #[serde(default)]
    pub unverified: String,
    /// Where the facts come from.
    #[serde(default)]
    pub sources: Vec<String>,
}

fn one() -> f64 {
    1.0
}

fn one_word() -> u8 {
    1
}

/// A value a caller asks for: a number, a named value, or a time of day.
#[derive(Debug, Clone, PartialEq)]
pub enum Requested {
    Number(f64),
    Text(String),
}

/// One register a setting writes: `raw` into the `mask` bits of `register`; the other bits of
/// the register are kept (read-modify-write) when `mask` is not the whole register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    pub register: u16,
    pub mask: u16,
    pub raw: u16,
}

impl Write {
    /// The register's new value from its `current` one.
    pub fn apply(&self, current: u16) -> u16 {
        (current & !self.mask) | (self.raw & self.mask)
    }
}

impl Setting {
    fn mask(&self) -> (u16, u8) {
        match self.bits {
            Some([first, last]) => {
                let width = last - first + 1;
                let ones = if width >= 16 {
                    u16::MAX
                } else {
                    (1u16 << width) - 1
                };
                (ones << first, first)
            }
            None => (u16::MAX, 0),
        }
    }

    /// The bits of `register` this setting occupies (none when it is not one of its registers).
    pub fn mask_of(&self, register: u16) -> u16 {
        if !self.registers().contains(&register) {
            0
        } else if self.words == 2 {
            u16::MAX
        } else {
            self.mask().0
        }
    }

    /// The registers this setting occupies.
    pub fn registers(&self) -> std::ops::Range<u16> {
        self.register..self.register + u16::from(self.words)
    }

    /// The register writes for `value` (one per register it spans), or why it is refused.
    pub fn write(&self, value: &Requested, order: WordOrder) -> Result<Vec<Write>, String> {
        if self.words == 2 {
            let words = split(self.wide(value)?, order);
            return Ok(vec![
                Write {
                    register: self.register,
                    mask: u16::MAX,
                    raw: words[0],
                },
                Write {
                    register: self.register + 1,
                    mask: u16::MAX,
                    raw: words[1],
                },
            ]);
        }
        if !self.verified {
            return Err(format!(
                "{} is not verified: {}; it is refused until it is (docs/control.md says how to verify a setting on your own hardware)",
                self.name, self.unverified
            ));
        }
        let raw: u16 = match (&self.encoding, value) {
            (_, Requested::Text(name)) if !self.values.is_empty() => {
                *self.values.get(name).ok_or_else(|| {
                    format!(
                        "{} takes one of {}, not {name:?}",
                        self.name,
                        self.values.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                })?
            }
            (Encoding::Hhmm, Requested::Text(time)) => hhmm(time)
                .ok_or_else(|| format!("{} is a time of day HH:MM, not {time:?}", self.name))?,
            (Encoding::Number, Requested::Number(number)) if self.values.is_empty() => {
                u16::try_from(self.number(*number)?)
                    .map_err(|_| format!("{}: {number} does not fit its register", self.name))?
            }
            _ => {
                return Err(format!(
                    "{} takes {}",
                    self.name,
                    if !self.values.is_empty() {
                        "a named value"
                    } else if self.encoding == Encoding::Hhmm {
                        "a time of day HH:MM"
                    } else {
                        "a number"
                    }
                ));
            }
        };
        let (mask, shift) = self.mask();
        let shifted = u32::from(raw) << shift;
        if shifted > u32::from(mask) || (shifted as u16) & !mask != 0 {
            return Err(format!(
                "{}: raw value {raw} does not fit its bits",
                self.name
            ));
        }
        Ok(vec![Write {
            register: self.register,
            mask,
            raw: shifted as u16,
        }])
    }

    /// A 32-bit number's raw value.
    fn wide(&self, value: &Requested) -> Result<u32, String> {
        match value {
            Requested::Number(number) => u32::try_from(self.number(*number)?)
                .map_err(|_| format!("{}: {number} does not fit its registers", self.name)),
            Requested::Text(_) => Err(format!("{} takes a number", self.name)),
        }
    }

    /// A number within the limits, at the register's resolution: its raw value.
    fn number(&self, value: f64) -> Result<i64, String> {
        let (Some(min), Some(max)) = (self.min, self.max) else {
            return Err(format!(
                "{} has no declared limits; it is refused (nothing is clamped)",
                self.name
            ));
        };
        if !value.is_finite() || value < min || value > max {
            return Err(format!(
                "{} must be between {min} and {max}{}, not {value} (nothing is clamped)",
                self.name,
                unit(&self.unit)
            ));
        }
        let raw = value / self.scale;
        if (raw - raw.round()).abs() > 1e-6 {
            return Err(format!(
                "{} is set in steps of {}{}, not {value}",
                self.name,
                self.scale,
                unit(&self.unit)
            ));
        }
        Ok(raw.round() as i64)
    }

    /// What the current values of its registers (from `register`, `words` of them) say this
    /// setting is (for the settings answer).
    pub fn read(&self, current: &[u16], order: WordOrder) -> Requested {
        if self.words == 2 {
            return Requested::Number(f64::from(combine(current, order)) * self.scale);
        }
        let (mask, shift) = self.mask();
        let raw = (current[0] & mask) >> shift;
        if let Some((name, _)) = self.values.iter().find(|(_, v)| **v == raw) {
            return Requested::Text(name.clone());
        }
        match self.encoding {
            Encoding::Hhmm => Requested::Text(format!("{:02}:{:02}", raw / 100, raw % 100)),
            Encoding::Number => Requested::Number(f64::from(raw) * self.scale),
        }
    }
}

fn unit(unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    }
}

/// `HH:MM` as `HH * 100 + MM`.
fn hhmm(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() == 5).then_some(h * 100 + m)
}

/// Checks a map's settings as it is loaded: names, limits or values, reasons, and that no two
/// settings share a bit of a register. Returns the entry at fault and why.
pub fn validate(settings: &[Setting]) -> Result<(), (String, String)> {
    let mut names = std::collections::HashSet::new();
    let mut taken: BTreeMap<u16, (u16, String)> = BTreeMap::new();
    for (index, setting) in settings.iter().enumerate() {
        let entry = format!("settings[{index}] ({})", setting.name);
        if !super::words::lower_snake_case(&setting.name) {
            return Err((entry, "name must be lower_snake_case".into()));
        }
        if !names.insert(setting.name.clone()) {
            return Err((entry, "duplicate setting name".into()));
        }
        if !(1..=2).contains(&setting.words)
            || (setting.words == 2
                && (setting.bits.is_some()
                    || setting.encoding != Encoding::Number
                    || !setting.values.is_empty()))
        {
            return Err((
                entry,
                "words must be 1, or 2 for a plain 32-bit number".into(),
            ));
        }
        if let Some([first, last]) = setting.bits
            && (first > last || last > 15)
        {
            return Err((entry, "bits must be [first, last] within 0..=15".into()));
        }
        if !setting.verified && setting.unverified.trim().is_empty() {
            return Err((
                entry,
                "an unverified setting must say why (`unverified`)".into(),
            ));
        }
        if setting.verified
            && setting.values.is_empty()
            && setting.encoding == Encoding::Number
            && (setting.min.is_none() || setting.max.is_none())
        {
            return Err((
                entry,
                "a verified number needs both min and max (a value without limits is refused, never clamped)".into(),
            ));
        }
        if !setting.scale.is_finite() || setting.scale <= 0.0 {
            return Err((entry, "scale must be a positive number".into()));
        }
        let (mask, _) = setting.mask();
        for register in setting.registers() {
            if let Some((other_mask, other)) = taken.get(&register)
                && other_mask & mask != 0
            {
                return Err((
                    entry,
                    format!("shares bits of register {register} with {other}"),
                ));
            }
            let slot = taken.entry(register).or_insert((0, setting.name.clone()));
            slot.0 |= mask;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HF: WordOrder = WordOrder::HighFirst;

    fn setting(json: serde_json::Value) -> Setting {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn numbers_are_refused_outside_their_limits_never_clamped() {
        let current = setting(serde_json::json!({
            "name": "max_charge_current_a", "register": 108, "unit": "A",
            "min": 0, "max": 185, "verified": true,
        }));
        assert_eq!(
            current.write(&Requested::Number(50.0), HF),
            Ok(vec![Write {
                register: 108,
                mask: 0xFFFF,
                raw: 50
            }])
        );
        let refused = current.write(&Requested::Number(200.0), HF).unwrap_err();
        assert!(refused.contains("between 0 and 185 A"), "{refused}");
        assert!(refused.contains("nothing is clamped"), "{refused}");
        assert!(current.write(&Requested::Number(-1.0), HF).is_err());
        assert!(current.write(&Requested::Number(f64::NAN), HF).is_err());
        assert!(
            current
                .write(&Requested::Number(2.5), HF)
                .unwrap_err()
                .contains("steps of 1")
        );
    }

    #[test]
    fn an_unverified_setting_is_refused_with_its_reason() {
        let low = setting(serde_json::json!({
            "name": "battery_low_capacity_pct", "register": 117, "unit": "%",
            "min": 46, "max": 48, "verified": false,
            "unverified": "the reference map gives 46-48 (voltage numbers) for a percentage",
        }));
        let refused = low.write(&Requested::Number(47.0), HF).unwrap_err();
        assert!(refused.contains("voltage numbers"), "{refused}");
    }

    #[test]
    fn bit_fields_keep_the_other_bits() {
        let priority = setting(serde_json::json!({
            "name": "priority", "register": 141, "bits": [0, 1],
            "values": {"battery_first": 2, "load_first": 3}, "verified": true,
        }));
        let write = priority
            .write(&Requested::Text("load_first".into()), HF)
            .unwrap()[0];
        assert_eq!(write.mask, 0b11);
        // Bits 2-5 (grid balance) stay as they were.
        assert_eq!(write.apply(0b10_1010), 0b10_1011);
        assert_eq!(
            priority.read(&[0b10_1011], HF),
            Requested::Text("load_first".into())
        );
        assert!(
            priority
                .write(&Requested::Text("solar_first".into()), HF)
                .unwrap_err()
                .contains("battery_first, load_first")
        );
        let high = setting(serde_json::json!({
            "name": "grid_charge", "register": 172, "bits": [0, 0],
            "values": {"off": 0, "on": 1}, "verified": true,
        }));
        assert_eq!(
            high.write(&Requested::Text("on".into()), HF).unwrap()[0].apply(0b110),
            0b111
        );
    }

    #[test]
    fn times_of_day_are_hhmm() {
        let start = setting(serde_json::json!({
            "name": "tou1_start", "register": 148, "encoding": "hhmm", "verified": true,
        }));
        assert_eq!(
            start.write(&Requested::Text("23:59".into()), HF).unwrap()[0].raw,
            2359
        );
        assert!(start.write(&Requested::Text("24:00".into()), HF).is_err());
        assert!(start.write(&Requested::Text("7:5".into()), HF).is_err());
        assert_eq!(start.read(&[530], HF), Requested::Text("05:30".into()));
    }

    #[test]
    fn a_32_bit_value_is_two_registers_in_the_maps_word_order() {
        let feed_in = setting(serde_json::json!({
            "name": "max_feed_in_w", "register": 12473, "words": 2, "unit": "W",
            "min": 0, "max": 100000, "verified": true,
        }));
        let words = feed_in.write(&Requested::Number(70_000.0), HF).unwrap();
        assert_eq!(
            words
                .iter()
                .map(|w| (w.register, w.raw))
                .collect::<Vec<_>>(),
            [(12473, 1), (12474, 4_464)]
        );
        let low_first = feed_in
            .write(&Requested::Number(70_000.0), WordOrder::LowFirst)
            .unwrap();
        assert_eq!(low_first[0].raw, 4_464);
        assert_eq!(feed_in.read(&[1, 4_464], HF), Requested::Number(70_000.0));
        let overlapping = setting(serde_json::json!({
            "name": "other", "register": 12474, "min": 0, "max": 1, "verified": true,
        }));
        assert!(
            validate(&[feed_in, overlapping])
                .unwrap_err()
                .1
                .contains("shares bits of register 12474")
        );
    }

    #[test]
    fn declarations_are_checked_as_they_load() {
        let ok = setting(
            serde_json::json!({"name": "a", "register": 141, "bits": [0, 1], "values": {"x": 2}, "verified": true}),
        );
        let overlapping = setting(
            serde_json::json!({"name": "b", "register": 141, "bits": [1, 2], "values": {"y": 1}, "verified": true}),
        );
        let (_, why) = validate(&[ok.clone(), overlapping]).unwrap_err();
        assert!(why.contains("shares bits of register 141 with a"), "{why}");
        let no_limits =
            setting(serde_json::json!({"name": "c", "register": 108, "verified": true}));
        assert!(
            validate(&[no_limits])
                .unwrap_err()
                .1
                .contains("min and max")
        );
        let no_reason =
            setting(serde_json::json!({"name": "d", "register": 108, "verified": false}));
        assert!(
            validate(&[no_reason])
                .unwrap_err()
                .1
                .contains("must say why")
        );
        let next_bits = setting(
            serde_json::json!({"name": "e", "register": 141, "bits": [2, 3], "values": {"z": 2}, "verified": true}),
        );
        assert!(validate(&[ok, next_bits]).is_ok());
    }

    /// The powdrive map's traps (#28): 130's polarity, 117's limits and 141's two meanings are
    /// refused with the disagreement named; no declared setting is written unverified.
    #[test]
    fn the_powdrive_maps_traps_are_refused_with_their_reasons() {
        let map = crate::drivers::register_map::builtin_map("powdrive").unwrap();
        let named = |name: &str| {
            map.settings
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("powdrive declares {name}"))
        };
        let polarity = named("grid_charge")
            .write(&Requested::Text("enabled".into()), HF)
            .unwrap_err();
        assert!(polarity.contains("treat 1 as enabled"), "{polarity}");
        let limits = named("battery_low_capacity_pct")
            .write(&Requested::Number(47.0), HF)
            .unwrap_err();
        assert!(limits.contains("voltage numbers"), "{limits}");
        let twice = named("energy_priority")
            .write(&Requested::Text("load_first".into()), HF)
            .unwrap_err();
        assert!(twice.contains("defined twice"), "{twice}");
        for setting in map.settings.iter().filter(|s| !s.verified) {
            let value = match (setting.values.keys().next(), setting.encoding) {
                (Some(name), _) => Requested::Text(name.clone()),
                (None, Encoding::Hhmm) => Requested::Text("01:00".into()),
                (None, Encoding::Number) => Requested::Number(setting.min.unwrap_or(0.0)),
            };
            assert!(
                setting.write(&value, HF).is_err(),
                "{} was written unverified",
                setting.name
            );
        }
        // The time-of-use windows, their SOCs, powers and grid charging are all declared.
        for i in 1..=6 {
            for kind in ["start", "power_w", "soc_pct", "grid_charge"] {
                named(&format!("tou{i}_{kind}"));
            }
        }
    }
}
