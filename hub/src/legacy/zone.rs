//! Which timezone the old app's data is in, and where that knowledge came from.
//!
//! The old app wrote local time: with an offset in its later versions, naive in its early ones.
//! The zone is taken, in this order, from `--timezone`, the config, an existing solarhub system,
//! the file's own `configuration` and `systems` tables, and finally the offsets the file itself
//! used. A zone that does not come from the user (an existing system, the file's settings) is
//! checked against those offsets first: the old app filled `systems.timezone` with a default that
//! need not be the site's, and a zone that disagrees with how the timestamps were written would put
//! naive rows hours away from where they belong. When the zone comes from the offsets, each naive
//! timestamp takes the offset of the nearest offset-bearing timestamp of the same table and device,
//! and a zone consistent with every offset seen settles the hours between two different ones (a DST
//! change). A file with naive timestamps and no zone anywhere is refused before anything is written.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use chrono::{NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;

use crate::db::legacy_source::{self as source, LEGACY_SAMPLE_TABLES, LegacyTable};
use crate::db::{DbConnection, DbError};

use super::timestamps::{Stamp, TimestampKind, in_zone, read_stamp};

const HOUR_MS: i64 = 3_600_000;

/// A local wall-clock hour as a number: whole hours of the wall clock since 1970-01-01 00:00.
type LocalHour = i64;

fn local_hour(naive: NaiveDateTime) -> LocalHour {
    naive.and_utc().timestamp().div_euclid(3600)
}

/// Hours of one device in which every timestamp carried the same offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    first: LocalHour,
    last: LocalHour,
    offset_minutes: i32,
}

impl Run {
    /// The instants (UTC ms, offset) this run vouches for: half past its first and last hour.
    fn observations(&self) -> [(i64, i32); 2] {
        let at = |hour: LocalHour| {
            hour * HOUR_MS + HOUR_MS / 2 - i64::from(self.offset_minutes) * 60_000
        };
        [
            (at(self.first), self.offset_minutes),
            (at(self.last), self.offset_minutes),
        ]
    }
}

/// The offsets the file's timestamps were written with, per sample table and device.
#[derive(Debug, Default)]
pub(crate) struct OffsetIndex {
    /// Legacy table (original name) → device → runs in local-hour order.
    runs: HashMap<String, HashMap<String, Vec<Run>>>,
    /// Whether any timestamp has no offset.
    naive_rows: bool,
    /// A zone that has every offset the file used at the times it used them, when one does.
    zone: Option<Tz>,
    /// The offset of the latest run, for when no zone fits every offset.
    latest_offset: Option<i32>,
}

impl OffsetIndex {
    /// One grouped pass over each sample table (`prefix` + name).
    pub(crate) fn scan(conn: &mut DbConnection, prefix: &str) -> Result<OffsetIndex, DbError> {
        let mut index = OffsetIndex::default();
        let mut latest: Option<(LocalHour, i32)> = None;
        for table in LEGACY_SAMPLE_TABLES {
            let Some(legacy) = LegacyTable::inspect(conn, &format!("{prefix}{table}"))? else {
                continue;
            };
            let mut devices: HashMap<String, Vec<Run>> = HashMap::new();
            let mut open: Option<(String, LocalHour, Option<i32>)> = None;
            for edge in source::offset_edges(conn, &legacy)? {
                let (Some(device), Some(hour)) = (edge.device, edge.hour) else {
                    continue;
                };
                let Ok(hour) =
                    NaiveDateTime::parse_from_str(&format!("{hour}:00"), "%Y-%m-%d %H:%M")
                else {
                    continue;
                };
                let hour = local_hour(hour);
                if edge.offset_minutes.is_none() {
                    index.naive_rows = true;
                }
                if edge.starts != 0 {
                    open = Some((device.clone(), hour, edge.offset_minutes));
                }
                if edge.ends != 0
                    && let Some((open_device, first, offset)) = open.take()
                    && open_device == device
                    && offset == edge.offset_minutes
                    && let Some(offset_minutes) = offset
                {
                    devices.entry(device).or_default().push(Run {
                        first,
                        last: hour,
                        offset_minutes,
                    });
                    if latest.is_none_or(|(at, _)| hour >= at) {
                        latest = Some((hour, offset_minutes));
                    }
                }
            }
            for runs in devices.values_mut() {
                runs.sort_by_key(|r| (r.first, -r.offset_minutes));
            }
            index.runs.insert((*table).to_owned(), devices);
        }
        index.latest_offset = latest.map(|(_, offset)| offset);
        index.zone = infer_zone(&index.observations());
        Ok(index)
    }

    fn all_runs(&self) -> impl Iterator<Item = &Run> {
        self.runs.values().flat_map(|d| d.values()).flatten()
    }

    fn observations(&self) -> Vec<(i64, i32)> {
        self.all_runs().flat_map(Run::observations).collect()
    }

    /// Whether any timestamp carried an offset.
    pub(crate) fn has_offsets(&self) -> bool {
        self.all_runs().next().is_some()
    }

    pub(crate) fn has_naive(&self) -> bool {
        self.naive_rows
    }

    /// The offsets seen, as `+05:00, +06:00`.
    pub(crate) fn offsets_text(&self) -> String {
        let offsets: BTreeSet<i32> = self.all_runs().map(|r| r.offset_minutes).collect();
        offsets
            .into_iter()
            .map(offset_text)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether `tz` has, at every time the file wrote an offset, that offset.
    pub(crate) fn consistent_with(&self, tz: Tz) -> bool {
        fits(tz, &self.observations())
    }

    /// The zone the offsets point at: one that has all of them, else the latest offset as a fixed
    /// zone where one exists.
    fn zone(&self) -> Tz {
        self.zone
            .or_else(|| self.latest_offset.and_then(fixed_zone))
            .unwrap_or(chrono_tz::UTC)
    }

    /// A naive timestamp of `table` and `device`, read with the offsets written around it.
    fn resolve(
        &self,
        table: &str,
        device: Option<&str>,
        naive: NaiveDateTime,
    ) -> (i64, TimestampKind) {
        let runs = self
            .runs
            .get(table)
            .and_then(|devices| devices.get(device?))
            .filter(|runs| !runs.is_empty());
        let Some(runs) = runs else {
            return self.in_file_zone(naive);
        };
        let hour = local_hour(naive);
        let wall_ms = naive.and_utc().timestamp_millis();
        let with = |offset: i32| wall_ms - i64::from(offset) * 60_000;
        let containing: BTreeSet<i32> = runs
            .iter()
            .filter(|r| r.first <= hour && hour <= r.last)
            .map(|r| r.offset_minutes)
            .collect();
        if let Some(&largest) = containing.iter().next_back() {
            // Two offsets in one hour: the repeated hour of a fall-back night, read as the first
            // (the larger offset is the earlier instant).
            let kind = match containing.len() {
                1 => TimestampKind::Naive,
                _ => TimestampKind::NaiveAmbiguous,
            };
            return (with(largest), kind);
        }
        let before = runs.iter().filter(|r| r.last < hour).max_by_key(|r| r.last);
        let after = runs
            .iter()
            .filter(|r| r.first > hour)
            .min_by_key(|r| r.first);
        match (before, after) {
            (Some(b), Some(a)) if b.offset_minutes != a.offset_minutes => {
                // The offset changed between the two: a zone that has both says where.
                match self.zone {
                    Some(zone) => in_zone(naive, zone),
                    None if hour - b.last <= a.first - hour => {
                        (with(b.offset_minutes), TimestampKind::Naive)
                    }
                    None => (with(a.offset_minutes), TimestampKind::Naive),
                }
            }
            (Some(run), _) | (None, Some(run)) => (with(run.offset_minutes), TimestampKind::Naive),
            (None, None) => self.in_file_zone(naive),
        }
    }

    fn in_file_zone(&self, naive: NaiveDateTime) -> (i64, TimestampKind) {
        in_zone(naive, self.zone())
    }
}

fn offset_text(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60)
}

/// A zone of one fixed offset: `Etc/GMT-5` for +05:00 (the Etc names count the other way).
fn fixed_zone(minutes: i32) -> Option<Tz> {
    match minutes {
        0 => Some(chrono_tz::UTC),
        m if m % 60 == 0 => {
            let hours = m / 60;
            let sign = if hours > 0 { '-' } else { '+' };
            format!("Etc/GMT{sign}{}", hours.abs()).parse().ok()
        }
        _ => None,
    }
}

fn fits(tz: Tz, observations: &[(i64, i32)]) -> bool {
    observations.iter().all(|(utc_ms, offset_minutes)| {
        chrono::DateTime::from_timestamp_millis(*utc_ms).is_some_and(|utc| {
            tz.offset_from_utc_datetime(&utc.naive_utc())
                .fix()
                .local_minus_utc()
                == offset_minutes * 60
        })
    })
}

/// A zone with every observed offset at its time: a fixed `Etc/GMT±N` when the file used one
/// offset, else the first fitting zone, regions people live in first. Several zones usually fit;
/// any of them buckets the file's own period the same way, and the report says to pass
/// `--timezone` for the real one.
fn infer_zone(observations: &[(i64, i32)]) -> Option<Tz> {
    let offsets: BTreeSet<i32> = observations.iter().map(|(_, o)| *o).collect();
    match offsets.len() {
        0 => return None,
        1 => {
            if let Some(zone) = offsets.first().and_then(|o| fixed_zone(*o)) {
                return Some(zone);
            }
        }
        _ => {}
    }
    const REGIONS: [&str; 9] = [
        "Europe/",
        "America/",
        "Asia/",
        "Australia/",
        "Africa/",
        "Pacific/",
        "Atlantic/",
        "Indian/",
        "Antarctica/",
    ];
    let rank = |tz: &Tz| {
        let name = tz.name();
        let region = REGIONS
            .iter()
            .position(|r| name.starts_with(r))
            .unwrap_or(REGIONS.len());
        (region, name)
    };
    let mut zones: Vec<Tz> = chrono_tz::TZ_VARIANTS.to_vec();
    zones.sort_by(|a, b| rank(a).cmp(&rank(b)));
    zones.into_iter().find(|tz| fits(*tz, observations))
}

/// Where the zone of the legacy data came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneSource {
    /// `--timezone`.
    Flag,
    /// The config file (which of its keys).
    Config(String),
    /// A solarhub system that already existed.
    System(String),
    /// The old app's `configuration` table (the key).
    FileSetting(String),
    /// The old app's `systems` table (the system).
    FileSystem(String),
    /// The offsets of the file's own timestamps (the offsets).
    FileOffsets(String),
    /// Nothing: the file has no timestamps to read.
    Nothing,
}

impl fmt::Display for ZoneSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZoneSource::Flag => write!(f, "--timezone"),
            ZoneSource::Config(key) => write!(f, "the config ({key})"),
            ZoneSource::System(id) => write!(f, "the existing system {id}"),
            ZoneSource::FileSetting(key) => {
                write!(f, "the file's configuration table ({key})")
            }
            ZoneSource::FileSystem(id) => write!(f, "the file's systems table (system {id})"),
            ZoneSource::FileOffsets(offsets) => write!(
                f,
                "the UTC offsets the file's timestamps were written with ({offsets}); pass --timezone to name the real zone"
            ),
            ZoneSource::Nothing => write!(f, "the default (UTC): the file has no timestamps"),
        }
    }
}

/// A zone someone named, and where: (zone text, source).
pub(crate) type Candidate = (String, ZoneSource);

/// The zone of the legacy data, and how naive timestamps are read.
#[derive(Debug)]
pub(crate) struct ZoneChoice {
    pub(crate) tz: Tz,
    pub(crate) source: ZoneSource,
    /// Sources that named a zone and were passed over, and why.
    pub(crate) notes: Vec<String>,
    /// Set when naive timestamps are read with the file's own offsets.
    offsets: Option<OffsetIndex>,
}

/// Why no zone could be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoZone {
    /// `--timezone` (or the config) named something that is not an IANA zone.
    Invalid { zone: String, source: ZoneSource },
    /// Naive timestamps, and no zone and no offset anywhere.
    Unknown,
}

impl ZoneChoice {
    /// Picks the zone: `given` (the flag, else the config) is taken as it is; the rest of
    /// `candidates` (an existing system, the file's settings) only when the file's offsets agree
    /// with it; then the offsets themselves. `scan` reads the offsets, only when needed.
    pub(crate) fn choose(
        given: Option<Candidate>,
        candidates: Vec<Candidate>,
        scan: impl FnOnce() -> Result<OffsetIndex, DbError>,
    ) -> Result<Result<ZoneChoice, NoZone>, DbError> {
        if let Some((zone, source)) = given {
            return Ok(match crate::local_time::zone(&zone) {
                Ok(tz) => Ok(ZoneChoice {
                    tz,
                    source,
                    notes: Vec::new(),
                    offsets: None,
                }),
                Err(_) => Err(NoZone::Invalid { zone, source }),
            });
        }
        let index = scan()?;
        let mut notes = Vec::new();
        for (zone, source) in candidates {
            let Ok(tz) = crate::local_time::zone(&zone) else {
                notes.push(format!(
                    "{source} names {zone:?}, which is not a timezone; not used"
                ));
                continue;
            };
            if index.consistent_with(tz) {
                return Ok(Ok(ZoneChoice {
                    tz,
                    source,
                    notes,
                    offsets: None,
                }));
            }
            notes.push(format!(
                "{source} names {zone}, but the file's timestamps were written with offsets ({}) that {zone} does not have at those times; not used",
                index.offsets_text()
            ));
        }
        if index.has_offsets() {
            return Ok(Ok(ZoneChoice {
                tz: index.zone(),
                source: ZoneSource::FileOffsets(index.offsets_text()),
                notes,
                offsets: Some(index),
            }));
        }
        if index.has_naive() {
            return Ok(Err(NoZone::Unknown));
        }
        Ok(Ok(ZoneChoice {
            tz: chrono_tz::UTC,
            source: ZoneSource::Nothing,
            notes,
            offsets: None,
        }))
    }

    /// A zone chosen without looking at the file (tests, and timestamps outside sample tables).
    #[cfg(test)]
    fn fixed(tz: Tz) -> ZoneChoice {
        ZoneChoice {
            tz,
            source: ZoneSource::Flag,
            notes: Vec::new(),
            offsets: None,
        }
    }

    /// Reads a timestamp of legacy `table` written for `device` (the table's device column).
    pub(crate) fn read(
        &self,
        table: &str,
        device: Option<&str>,
        text: &str,
    ) -> Option<(i64, TimestampKind)> {
        Some(match read_stamp(text)? {
            Stamp::Exact(ms) => (ms, TimestampKind::WithOffset),
            Stamp::Naive(naive) => match &self.offsets {
                Some(index) => index.resolve(table, device, naive),
                None => in_zone(naive, self.tz),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    fn hour(text: &str) -> LocalHour {
        local_hour(NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap())
    }

    fn index(runs: Vec<Run>) -> OffsetIndex {
        let mut index = OffsetIndex::default();
        index
            .runs
            .entry("energy_samples".into())
            .or_default()
            .insert("inv".into(), runs);
        index.zone = infer_zone(&index.observations());
        index
    }

    fn naive(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn one_offset_gives_a_fixed_zone_and_every_naive_row_takes_it() {
        let index = index(vec![Run {
            first: hour("2025-06-15 06:00"),
            last: hour("2025-06-16 23:00"),
            offset_minutes: 300,
        }]);
        assert_eq!(index.zone().name(), "Etc/GMT-5");
        // Six hours before the first offset-bearing row, read with its offset.
        let (at, kind) = index.resolve("energy_samples", Some("inv"), naive("2025-06-15 00:00:30"));
        assert_eq!(at, ms("2025-06-15T00:00:30+05:00"));
        assert_eq!(kind, TimestampKind::Naive);
        // An unknown device (or table) is read in the zone the offsets point at.
        let (at, _) = index.resolve("meter_samples", Some("m"), naive("2025-06-15 00:00:30"));
        assert_eq!(at, ms("2025-06-15T00:00:30+05:00"));
    }

    #[test]
    fn naive_rows_on_both_sides_of_a_dst_change_take_the_offset_of_their_side() {
        // Berlin springs forward on 2025-03-30 02:00 (+01:00 → +02:00).
        let index = index(vec![
            Run {
                first: hour("2025-03-29 00:00"),
                last: hour("2025-03-29 20:00"),
                offset_minutes: 60,
            },
            Run {
                first: hour("2025-03-30 08:00"),
                last: hour("2025-03-31 23:00"),
                offset_minutes: 120,
            },
        ]);
        let zone = index.zone.expect("a zone fits both offsets");
        assert!(index.consistent_with(zone));
        assert!(index.consistent_with("Europe/Berlin".parse().unwrap()));
        assert!(!index.consistent_with("Asia/Karachi".parse().unwrap()));
        let read = |text: &str| index.resolve("energy_samples", Some("inv"), naive(text)).0;
        assert_eq!(read("2025-03-29 23:00:00"), ms("2025-03-29T23:00:00+01:00"));
        assert_eq!(read("2025-03-30 01:59:30"), ms("2025-03-30T01:59:30+01:00"));
        assert_eq!(read("2025-03-30 03:00:00"), ms("2025-03-30T03:00:00+02:00"));
        assert_eq!(read("2025-03-30 07:00:00"), ms("2025-03-30T07:00:00+02:00"));
    }

    #[test]
    fn a_repeated_hour_is_read_as_its_first_occurrence() {
        // Berlin falls back on 2025-10-26 03:00 (+02:00 → +01:00): 02:xx happens twice.
        let index = index(vec![
            Run {
                first: hour("2025-10-25 00:00"),
                last: hour("2025-10-26 02:00"),
                offset_minutes: 120,
            },
            Run {
                first: hour("2025-10-26 02:00"),
                last: hour("2025-10-27 00:00"),
                offset_minutes: 60,
            },
        ]);
        let (at, kind) = index.resolve("energy_samples", Some("inv"), naive("2025-10-26 02:30:00"));
        assert_eq!(at, ms("2025-10-26T02:30:00+02:00"));
        assert_eq!(kind, TimestampKind::NaiveAmbiguous);
    }

    #[test]
    fn the_order_of_sources() {
        let karachi = || {
            (
                "Asia/Karachi".to_owned(),
                ZoneSource::FileSetting("timezone".into()),
            )
        };
        let no_scan = || -> Result<OffsetIndex, DbError> { panic!("the file was scanned") };
        // What the user gave is taken as it is.
        let choice = ZoneChoice::choose(
            Some(("Europe/Berlin".into(), ZoneSource::Flag)),
            vec![karachi()],
            no_scan,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (choice.tz.name(), choice.source),
            ("Europe/Berlin", ZoneSource::Flag)
        );
        assert!(matches!(
            ZoneChoice::choose(
                Some(("Mars/Olympus".into(), ZoneSource::Flag)),
                vec![],
                no_scan
            )
            .unwrap(),
            Err(NoZone::Invalid { .. })
        ));
        // A file setting that agrees with the offsets is taken; one that does not is passed over.
        let karachi_offsets = || {
            Ok(index(vec![Run {
                first: hour("2025-06-15 06:00"),
                last: hour("2025-06-16 23:00"),
                offset_minutes: 300,
            }]))
        };
        let choice = ZoneChoice::choose(None, vec![karachi()], karachi_offsets)
            .unwrap()
            .unwrap();
        assert_eq!(choice.tz.name(), "Asia/Karachi");
        let utc = ("UTC".to_owned(), ZoneSource::System("home".into()));
        let choice = ZoneChoice::choose(None, vec![utc], karachi_offsets)
            .unwrap()
            .unwrap();
        assert_eq!(choice.tz.name(), "Etc/GMT-5");
        assert!(matches!(choice.source, ZoneSource::FileOffsets(ref o) if o == "+05:00"));
        assert_eq!(choice.notes.len(), 1, "{:?}", choice.notes);
        // Only naive timestamps and nothing named: refused.
        let all_naive = || {
            Ok(OffsetIndex {
                naive_rows: true,
                ..OffsetIndex::default()
            })
        };
        assert_eq!(
            ZoneChoice::choose(None, vec![], all_naive)
                .unwrap()
                .unwrap_err(),
            NoZone::Unknown
        );
        let fixed = ZoneChoice::fixed(chrono_tz::UTC);
        assert_eq!(
            fixed
                .read("energy_samples", None, "2025-06-15 00:00:00")
                .map(|r| r.0),
            Some(ms("2025-06-15T00:00:00Z"))
        );
    }
}
