//! Energy rollups on both backends, fed through real ingest (`Ingest::commit`, the path every
//! collector batch takes) and rolled by the roller: known answers (a constant power split across
//! hours, a counter reset, a gap), a property test (random streams with gaps, resets, duplicates,
//! out-of-order and late samples: incremental rows == a full recompute, row for row), DST days,
//! and a battery array moved between inverter arrays mid-day.

use crate::common;

use std::collections::BTreeMap;

use chrono::TimeZone;
use common::TestDb;
use solarhub_hub::db::rollups::{self, RollupRows};
use solarhub_hub::ingest::IncomingReading;
use solarhub_hub::rollup::{self, Settings, roller};

const TZ: chrono_tz::Tz = chrono_tz::Europe::Berlin;

const INSTALLATION: &str = r#"
home:
  id: home
  name: Home
  timezone: Europe/Berlin
arrays:
  - id: a1
    name: A1
    inverter_ids: [inv1, inv2]
  - id: a2
    name: A2
    inverter_ids: [inv3]
inverters:
  - id: inv1
    name: One
    array_id: a1
    adapter: {type: powdrive, transport: tcp, host: 127.0.0.1, port: 1502, unit_id: 1}
  - id: inv2
    name: Two
    array_id: a1
    adapter: {type: powdrive, transport: tcp, host: 127.0.0.1, port: 1502, unit_id: 2}
  - id: inv3
    name: Three
    array_id: a2
    adapter: {type: senergy, transport: tcp, host: 127.0.0.1, port: 1502, unit_id: 3}
meters:
  - id: grid1
    name: Grid
    array_id: home
    adapter: {type: iammeter, transport: tcp, host: 127.0.0.1, port: 1502, unit_id: 4}
battery_banks:
  - id: pack1
    name: Pack
    adapter: {type: pytes, serial_port: /dev/ttyUSB1, batteries: 1, cells_per_battery: 2}
battery_bank_arrays:
  - id: ba1
    name: BA1
    battery_bank_ids: [pack1]
battery_bank_array_attachments:
  - battery_bank_array_id: ba1
    inverter_array_id: a1
    attached_since: "2025-01-01T00:00:00+01:00"
    detached_at: "2025-06-01T12:30:00+02:00"
  - battery_bank_array_id: ba1
    inverter_array_id: a2
    attached_since: "2025-06-01T12:30:00+02:00"
"#;

type Site = common::ingest_site::IngestSite;

fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    TZ.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .earliest()
        .unwrap()
        .timestamp_millis()
}

fn reading(device: &str, ts: i64, fields: &[(&str, f64)]) -> IncomingReading {
    IncomingReading {
        device_id: device.into(),
        adapter_id: format!("{device}.adapter"),
        ts,
        fields: fields.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        ..IncomingReading::default()
    }
}

#[track_caller]
fn close(actual: Option<f64>, expected: f64) {
    let actual = actual.unwrap_or_else(|| panic!("expected {expected}, got nothing"));
    assert!(
        (actual - expected).abs() < 1e-9,
        "expected {expected}, got {actual}"
    );
}

fn known_answers(db: TestDb) {
    let mut site = Site::new(db, INSTALLATION);
    let mut readings = Vec::new();
    // inv1: 1000 W for exactly two hours, 10:30 to 12:30, power only.
    let start = local(2025, 5, 10, 10, 30);
    for i in 0..=720 {
        readings.push(reading(
            "inv1",
            start + i * 10_000,
            &[("pv_power_w", 1000.0)],
        ));
    }
    // inv2: 3600 W in hour 10, its counter (10 Wh per 10 s) resets to 0 at 10:30.
    let hour10 = local(2025, 5, 10, 10, 0);
    for i in 0..=360 {
        let counter = if i < 180 {
            750_000.0 + i as f64 * 10.0
        } else {
            (i - 180) as f64 * 10.0
        };
        readings.push(reading(
            "inv2",
            hour10 + i * 10_000,
            &[("pv_power_w", 3600.0), ("pv_energy_total_wh", counter)],
        ));
    }
    // inv3: 1000 W through hour 14 with a 20-minute hole from 14:20 to 14:40.
    let hour14 = local(2025, 5, 10, 14, 0);
    for i in (0..=360).filter(|i| !(121..240).contains(i)) {
        readings.push(reading(
            "inv3",
            hour14 + i * 10_000,
            &[("pv_power_w", 1000.0)],
        ));
    }
    // Out of order within batches, as a collector replaying an outbox may send them.
    readings.reverse();
    site.send(readings);
    site.roll();
    let rows = site.rollups("home");

    let hours: BTreeMap<(&str, i32), &rollups::InverterHour> = rows
        .inverter_hours
        .iter()
        .map(|r| ((r.inverter_id.as_str(), r.hour_start), r))
        .collect();
    close(hours[&("inv1", 10)].solar_kwh, 0.5);
    close(hours[&("inv1", 11)].solar_kwh, 1.0);
    close(hours[&("inv1", 12)].solar_kwh, 0.5);
    close(Some(hours[&("inv1", 10)].coverage_pct), 50.0);
    close(Some(hours[&("inv1", 11)].coverage_pct), 100.0);
    let inv1_day = rows
        .inverter_days
        .iter()
        .find(|r| r.inverter_id == "inv1")
        .unwrap();
    close(inv1_day.solar_kwh, 2.0);
    // The reset adds only what was produced: 3.6 kWh, not 750 kWh or less than 3.6.
    close(hours[&("inv2", 10)].solar_kwh, 3.6);
    // The gap is not bridged and lowers coverage.
    close(hours[&("inv3", 14)].solar_kwh, 40.0 / 60.0);
    close(Some(hours[&("inv3", 14)].coverage_pct), 100.0 * 40.0 / 60.0);
    // Arrays and the system sum their parts.
    let array_hour = |array: &str, hour: i32| {
        rows.array_hours
            .iter()
            .find(|r| r.array_id == array && r.hour_start == hour)
            .unwrap()
    };
    close(array_hour("a1", 10).solar_kwh, 0.5 + 3.6);
    let system_day = &rows.system_days[0];
    close(system_day.solar_kwh, 2.0 + 3.6 + 40.0 / 60.0);
    assert_eq!(system_day.date, "2025-05-10");

    // A full recompute gives the same rows.
    site.recompute("home");
    assert_eq!(site.rollups("home"), rows);
}

/// xorshift64*: a small deterministic generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Two days of readings for every device, with gaps, counter resets, and sometimes a reading twice.
fn random_stream(rng: &mut Rng) -> Vec<IncomingReading> {
    let start = local(2025, 6, 1, 0, 0) - 3 * 3_600_000 + rng.below(3_600_000) as i64;
    let mut readings = Vec::new();
    for device in ["inv1", "inv2", "inv3", "grid1", "pack1"] {
        let step = [10_000, 30_000, 60_000][rng.below(3) as usize];
        let mut ts = start;
        let mut counter = rng.below(1_000_000) as f64;
        let mut import = rng.below(1_000_000) as f64;
        while ts < start + 2 * 86_400_000 {
            if rng.chance(1) {
                // A gap of up to 40 minutes.
                ts += rng.below(40 * 60_000) as i64;
            }
            if rng.chance(1) {
                counter = 0.0;
            }
            let power = rng.below(5000) as f64 - 1000.0;
            counter += power.max(0.0) * step as f64 / 3_600_000.0;
            import += (power - 2000.0).max(0.0) * step as f64 / 3_600_000.0;
            let reading = match device {
                "grid1" => reading(
                    device,
                    ts,
                    &[("power_w", power - 2000.0), ("import_total_wh", import)],
                ),
                "pack1" => reading(device, ts, &[("power_w", power / 2.0), ("soc_pct", 50.0)]),
                _ => reading(
                    device,
                    ts,
                    &[
                        ("pv_power_w", power.max(0.0)),
                        ("pv_energy_total_wh", counter),
                        ("grid_power_w", power - 1500.0),
                        ("battery_power_w", 800.0 - power / 3.0),
                        ("battery_soc_pct", 40.0 + rng.below(40) as f64),
                    ],
                ),
            };
            if rng.chance(2) {
                readings.push(reading.clone());
            }
            readings.push(reading);
            ts += step;
        }
    }
    readings
}

fn incremental_equals_full_recompute(db_for: impl Fn() -> TestDb) {
    for seed in [1u64, 7, 42] {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut site = Site::new(db_for(), INSTALLATION);
        let mut stream = random_stream(&mut rng);
        // Sort by time, then disorder it: small shuffles, and some readings held back to arrive
        // (late) after later ones were already rolled.
        stream.sort_by_key(|r| r.ts);
        let mut late = Vec::new();
        let mut on_time = Vec::new();
        for reading in stream {
            // Readings next to an hour edge are held back more often: their intervals reach
            // into the neighbouring hour, which a late arrival must re-roll too.
            let near_edge = (reading.ts.rem_euclid(3_600_000)) < 90_000
                || (reading.ts.rem_euclid(3_600_000)) > 3_510_000;
            if rng.chance(if near_edge { 40 } else { 2 }) {
                late.push(reading);
            } else {
                on_time.push(reading);
            }
        }
        for chunk in on_time.chunks_mut(300) {
            for i in (1..chunk.len()).rev() {
                if rng.chance(20) {
                    chunk.swap(i, rng.below(i as u64 + 1) as usize);
                }
            }
        }
        let batches: Vec<&[IncomingReading]> = on_time.chunks(300).collect();
        for (i, batch) in batches.iter().enumerate() {
            site.send(batch.to_vec());
            if i % 5 == 0 {
                // Now and then the hub restarts (or another takes the roller over): the roller
                // remembers nothing, and rebuilds its devices' hours together.
                if rng.chance(20) {
                    site.roller.borrow_mut().forget();
                }
                site.roll();
            }
        }
        site.roll();
        // Late readings arrive one per batch, each rolled on its own now and then.
        for reading in late {
            site.send(vec![reading]);
            if rng.chance(10) {
                site.roll();
            }
        }
        site.roll();
        let incremental = site.rollups("home");
        assert!(incremental.system_hours.len() > 40, "seed {seed}");
        // Both ways were taken: samples folded into what the roller remembered, and hours
        // rebuilt from raw samples for the late ones.
        let counts = site.total_counts.get();
        assert!(counts.devices_followed > 20, "seed {seed}: {counts:?}");
        assert!(counts.device_hours_rebuilt > 10, "seed {seed}: {counts:?}");
        assert!(
            counts.devices_rebuilt_together > 3,
            "seed {seed}: {counts:?}"
        );
        site.recompute("home");
        let full = site.rollups("home");
        assert_eq!(
            incremental.inverter_hours.len(),
            full.inverter_hours.len(),
            "seed {seed}"
        );
        macro_rules! same {
            ($($field:ident: $name:literal),*) => {$(
                let (a, b) = (&incremental.$field, &full.$field);
                if a != b {
                    let first = a
                        .iter()
                        .zip(b)
                        .position(|(x, y)| x != y)
                        .unwrap_or(a.len().min(b.len()));
                    panic!(
                        "seed {seed}: {} differs between incremental and full recompute \
                         ({} rows against {}); first difference:\n{:?}\n{:?}",
                        $name,
                        a.len(),
                        b.len(),
                        a.get(first),
                        b.get(first)
                    );
                }
            )*};
        }
        same!(
            inverter_hours: "hourly_energy",
            array_hours: "array_hourly_energy",
            system_hours: "system_hourly_energy",
            pack_hours: "battery_bank_hourly",
            meter_hours: "meter_hourly_energy",
            inverter_days: "daily_summary",
            array_days: "array_daily_summary",
            system_days: "system_daily_summary",
            pack_days: "battery_bank_daily",
            meter_days: "meter_daily"
        );
    }
}

/// The served roller's everyday case: readings arriving in order, a batch every poll and a roll
/// every few, with devices that go quiet for hours, stop, or appear mid-stream, counter resets,
/// and the battery array's attachment edited while the stream runs. The roller folds what
/// arrives into what it remembers (and rebuilds the few hours the edit and the new device need);
/// its rows equal a full recompute's, row for row. Then one new sample: the pass reads it alone.
fn a_live_stream_rolls_what_arrived(db: TestDb) {
    use solarhub_hub::catalog::{BatteryArrayAttachment, Repository};
    let mut site = Site::new(db, INSTALLATION);
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let start = local(2025, 6, 1, 5, 0);
    let step = 30_000;
    let mut counters: BTreeMap<&str, f64> = BTreeMap::new();
    let mut ts = start;
    let mut polls = 0;
    while ts < start + 14 * 3_600_000 {
        let hour = (ts - start) / 3_600_000;
        let mut batch = Vec::new();
        for device in ["inv1", "inv2", "inv3", "grid1", "pack1"] {
            // inv2 stops for good after 9 hours; inv3 is quiet from hour 3 to hour 6.
            if (device == "inv2" && hour >= 9) || (device == "inv3" && (3..6).contains(&hour)) {
                continue;
            }
            let power = rng.below(4000) as f64;
            let counter = counters.entry(device).or_insert(1_000.0);
            *counter = if rng.chance(1) {
                0.0
            } else {
                *counter + power * step as f64 / 3_600_000.0
            };
            batch.push(match device {
                "grid1" => reading(
                    device,
                    ts,
                    &[("power_w", power - 2000.0), ("import_total_wh", *counter)],
                ),
                "pack1" => reading(
                    device,
                    ts,
                    &[("power_w", 1000.0 - power / 2.0), ("soc_pct", 50.0)],
                ),
                _ => reading(
                    device,
                    ts,
                    &[
                        ("pv_power_w", power),
                        ("pv_energy_total_wh", *counter),
                        ("battery_power_w", 500.0 - power / 4.0),
                    ],
                ),
            });
        }
        site.send(batch);
        polls += 1;
        if polls % 4 == 0 {
            site.roll();
        }
        if polls == 700 {
            // Mid-stream, the move at 12:30 is found wrong: ba1 moves at 13:10 instead.
            let repository = Repository::new(site.database.clone());
            let moved = local(2025, 6, 1, 12, 30);
            site.runtime
                .block_on(repository.delete::<BatteryArrayAttachment>(("ba1".into(), moved), false))
                .unwrap();
            let (first, _) = site
                .runtime
                .block_on(
                    repository
                        .get::<BatteryArrayAttachment>(("ba1".into(), local(2025, 1, 1, 0, 0))),
                )
                .unwrap();
            let later = local(2025, 6, 1, 13, 10);
            site.runtime
                .block_on(repository.update(
                    BatteryArrayAttachment {
                        detached_at: Some(later),
                        ..first.clone()
                    },
                    vec!["detached_at".into()],
                ))
                .unwrap();
            site.runtime
                .block_on(repository.create(BatteryArrayAttachment {
                    attached_since: later,
                    detached_at: None,
                    inverter_array_id: "a2".into(),
                    ..first
                }))
                .unwrap();
        }
        ts += step;
    }
    site.roll();
    let counts = site.total_counts.get();
    assert!(
        counts.devices_followed > 20 * counts.device_hours_rebuilt,
        "the roller rebuilt more than it followed: {counts:?}"
    );
    let incremental = site.rollups("home");
    site.recompute("home");
    let full = site.rollups("home");
    for (name, a, b) in [
        (
            "hours",
            format!("{:?}", incremental.inverter_hours),
            format!("{:?}", full.inverter_hours),
        ),
        (
            "array hours",
            format!("{:?}", incremental.array_hours),
            format!("{:?}", full.array_hours),
        ),
        (
            "system hours",
            format!("{:?}", incremental.system_hours),
            format!("{:?}", full.system_hours),
        ),
        (
            "pack hours",
            format!("{:?}", incremental.pack_hours),
            format!("{:?}", full.pack_hours),
        ),
        (
            "meter hours",
            format!("{:?}", incremental.meter_hours),
            format!("{:?}", full.meter_hours),
        ),
        (
            "days",
            format!("{:?}", incremental.inverter_days),
            format!("{:?}", full.inverter_days),
        ),
        (
            "array days",
            format!("{:?}", incremental.array_days),
            format!("{:?}", full.array_days),
        ),
        (
            "system days",
            format!("{:?}", incremental.system_days),
            format!("{:?}", full.system_days),
        ),
        (
            "pack days",
            format!("{:?}", incremental.pack_days),
            format!("{:?}", full.pack_days),
        ),
        (
            "meter days",
            format!("{:?}", incremental.meter_days),
            format!("{:?}", full.meter_days),
        ),
    ] {
        assert!(
            a == b,
            "{name} differ between the live roller and a full recompute"
        );
    }
    assert!(
        incremental
            .array_hours
            .iter()
            .any(|row| row.array_id == "a2" && row.battery_discharge_kwh.is_some())
    );

    // One new sample of one inverter: the pass reads that sample (once for the energy, once for
    // the 5-minute aggregates), rebuilds nothing, and follows that one device.
    site.send(vec![reading(
        "inv1",
        ts,
        &[("pv_power_w", 1234.0), ("pv_energy_total_wh", 99_999.0)],
    )]);
    site.roll();
    let counts = site.last_counts.get();
    assert_eq!(
        counts,
        solarhub_hub::rollup::incremental::PassCounts {
            samples_read: 2,
            device_hours_rebuilt: 0,
            devices_followed: 1,
            devices_rebuilt_together: 0,
        }
    );
}

fn property_sqlite() -> TestDb {
    TestDb::sqlite()
}

#[test]
fn incremental_rollups_equal_a_full_recompute_on_sqlite() {
    incremental_equals_full_recompute(property_sqlite);
}

#[test]
fn incremental_rollups_equal_a_full_recompute_on_postgres() {
    if TestDb::postgres().is_some() {
        incremental_equals_full_recompute(|| TestDb::postgres().unwrap());
    }
}

fn dst_days(db: TestDb) {
    let mut site = Site::new(db, INSTALLATION);
    let mut readings = Vec::new();
    for (from, to) in [
        (local(2025, 3, 29, 22, 0), local(2025, 3, 31, 2, 0)),
        (local(2025, 10, 25, 22, 0), local(2025, 10, 27, 2, 0)),
    ] {
        let mut ts = from;
        while ts <= to {
            readings.push(reading("inv1", ts, &[("pv_power_w", 1000.0)]));
            ts += 60_000;
        }
    }
    site.send(readings);
    site.roll();
    let rows = site.rollups("home");
    for (date, hours) in [("2025-03-30", 23), ("2025-10-26", 25)] {
        let day: Vec<&rollups::SystemHour> = rows
            .system_hours
            .iter()
            .filter(|r| r.date == date)
            .collect();
        assert_eq!(day.len(), hours, "{date}");
        let mut starts: Vec<i64> = day.iter().map(|r| r.bucket_start).collect();
        starts.dedup();
        assert_eq!(starts.len(), hours, "{date}: no hour merged with another");
        for hour in &day {
            close(hour.solar_kwh, 1.0);
            assert_eq!(hour.bucket_end - hour.bucket_start, 3_600_000);
        }
        let total = rows.system_days.iter().find(|d| d.date == date).unwrap();
        let sum: f64 = day.iter().map(|h| h.solar_kwh.unwrap()).sum();
        close(total.solar_kwh, sum);
        close(total.solar_kwh, f64::from(hours as u32));
        assert_eq!(
            total.bucket_end - total.bucket_start,
            hours as i64 * 3_600_000
        );
        close(Some(total.coverage_pct), 100.0);
    }
    let fall: Vec<i32> = rows
        .system_hours
        .iter()
        .filter(|r| r.date == "2025-10-26")
        .map(|r| r.hour_start)
        .collect();
    assert_eq!(&fall[..4], &[0, 1, 2, 2], "the repeated hour is two rows");
}

fn battery_array_moved_mid_day(db: TestDb) {
    let mut site = Site::new(db, INSTALLATION);
    let mut readings = Vec::new();
    // The pack discharges 500 W all day (its battery array moves from a1 to a2 at 12:30).
    let mut ts = local(2025, 6, 1, 0, 0);
    while ts <= local(2025, 6, 2, 0, 0) {
        readings.push(reading(
            "pack1",
            ts,
            &[("power_w", 500.0), ("soc_pct", 60.0)],
        ));
        for inverter in ["inv1", "inv3"] {
            readings.push(reading(inverter, ts, &[("pv_power_w", 100.0)]));
        }
        ts += 60_000;
    }
    site.send(readings);
    site.roll();
    let rows = site.rollups("home");
    let day = |array: &str| {
        rows.array_days
            .iter()
            .find(|r| r.array_id == array && r.date == "2025-06-01")
            .unwrap()
    };
    close(day("a1").battery_discharge_kwh, 0.5 * 12.5);
    close(day("a2").battery_discharge_kwh, 0.5 * 11.5);
    let hour = |array: &str, h: i32| {
        rows.array_hours
            .iter()
            .find(|r| r.array_id == array && r.date == "2025-06-01" && r.hour_start == h)
            .unwrap()
    };
    close(hour("a1", 12).battery_discharge_kwh, 0.25);
    close(hour("a2", 12).battery_discharge_kwh, 0.25);
    assert_eq!(hour("a1", 13).battery_discharge_kwh, None);
    close(hour("a2", 13).battery_discharge_kwh, 0.5);
    // The pack itself discharged all day.
    let pack_day = rows
        .pack_days
        .iter()
        .find(|r| r.date == "2025-06-01")
        .unwrap();
    close(pack_day.discharge_kwh, 12.0);
    site.recompute("home");
    assert_eq!(site.rollups("home"), rows);
}

/// The history RPCs through a real hub: every scope, the errors, `Recompute`, and a year of hourly
/// rows in one answer.
fn history_api(db: TestDb) {
    use solarhub_proto::tonic::Code;
    use solarhub_proto::v1::history_service_client::HistoryServiceClient;
    use solarhub_proto::v1::*;

    let hub = common::RunningHub::start(&db);
    let mut site = Site::on(hub.database.clone(), INSTALLATION);
    let start = local(2025, 5, 10, 10, 30);
    let mut readings = Vec::new();
    for i in 0..=720 {
        let ts = start + i * 10_000;
        readings.push(reading("inv1", ts, &[("pv_power_w", 1000.0)]));
        readings.push(reading(
            "pack1",
            ts,
            &[("power_w", -500.0), ("soc_pct", 50.0)],
        ));
        readings.push(reading("grid1", ts, &[("power_w", 2000.0)]));
    }
    site.send(readings);
    site.roll();
    let mut client = HistoryServiceClient::new(hub.channel.clone());
    let ts = |ms: i64| Some(solarhub_proto::time::timestamp(ms));
    let day = TimeRange {
        from: ts(local(2025, 5, 10, 0, 0)),
        to: ts(local(2025, 5, 11, 0, 0)),
    };
    let energy_client = client.clone();
    let energy = |request: EnergyHistoryRequest, daily: bool| {
        let mut client = energy_client.clone();
        hub.runtime.block_on(async move {
            if daily {
                client.get_daily_energy(request).await
            } else {
                client.get_hourly_energy(request).await
            }
        })
    };
    let hours = energy(
        EnergyHistoryRequest {
            inverter_id: "inv1".into(),
            range: Some(day),
            ..Default::default()
        },
        false,
    )
    .unwrap()
    .into_inner()
    .buckets;
    let solar: Vec<(i32, Option<f64>)> = hours.iter().map(|b| (b.hour, b.solar_kwh)).collect();
    assert_eq!(solar.len(), 3);
    for ((hour, kwh), (want_hour, want)) in solar.iter().zip([(10, 0.5), (11, 1.0), (12, 0.5)]) {
        assert_eq!(*hour, want_hour);
        close(*kwh, want);
    }
    assert_eq!(
        (hours[0].array_id.as_str(), hours[0].system_id.as_str()),
        ("a1", "home")
    );
    let system_days = energy(
        EnergyHistoryRequest {
            system_id: "home".into(),
            ..Default::default()
        },
        true,
    )
    .unwrap()
    .into_inner()
    .buckets;
    assert_eq!(system_days.len(), 1);
    close(system_days[0].solar_kwh, 2.0);
    // The grid meter imported 2 kW for two hours; the system takes its grid from it.
    close(system_days[0].grid_import_kwh, 4.0);
    assert_eq!(system_days[0].date, "2025-05-10");
    let array_hours = energy(
        EnergyHistoryRequest {
            array_id: "a1".into(),
            ..Default::default()
        },
        false,
    )
    .unwrap()
    .into_inner()
    .buckets;
    close(array_hours[1].battery_charge_kwh, 0.5);
    let battery = hub
        .runtime
        .block_on(client.get_battery_daily(BatteryHistoryRequest {
            battery_array_id: "ba1".into(),
            ..Default::default()
        }))
        .unwrap()
        .into_inner()
        .buckets;
    assert_eq!(battery.len(), 1);
    close(battery[0].charge_kwh, 1.0);
    assert_eq!(battery[0].pack_id, "pack1");
    let meter = hub
        .runtime
        .block_on(client.get_meter_hourly(MeterHistoryRequest {
            meter_id: "grid1".into(),
            ..Default::default()
        }))
        .unwrap()
        .into_inner()
        .buckets;
    assert_eq!(meter.len(), 3);
    close(meter[1].import_kwh, 2.0);

    // Errors name the resource or the field.
    let status = energy(
        EnergyHistoryRequest {
            inverter_id: "nope".into(),
            ..Default::default()
        },
        false,
    )
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = energy(
        EnergyHistoryRequest {
            system_id: "home".into(),
            array_id: "a1".into(),
            ..Default::default()
        },
        false,
    )
    .unwrap_err();
    assert_eq!(
        common::error_fields(&status),
        (Code::InvalidArgument, vec!["system_id".to_owned()])
    );
    let status = energy(
        EnergyHistoryRequest {
            system_id: "home".into(),
            range: Some(TimeRange {
                from: ts(local(2025, 5, 11, 0, 0)),
                to: ts(local(2025, 5, 10, 0, 0)),
            }),
            ..Default::default()
        },
        false,
    )
    .unwrap_err();
    assert_eq!(
        common::error_fields(&status),
        (Code::InvalidArgument, vec!["range".to_owned()])
    );

    // Recompute changes nothing that was right.
    let before = site.rollups("home");
    let report = hub
        .runtime
        .block_on(client.recompute(RecomputeRequest {
            system_id: "home".into(),
            range: None,
        }))
        .unwrap()
        .into_inner();
    assert!(report.hours >= 3 && report.days == 1, "{report:?}");
    assert_eq!(site.rollups("home"), before);
    // An open-ended range stops where the samples do.
    let report = hub
        .runtime
        .block_on(client.recompute(RecomputeRequest {
            system_id: "home".into(),
            range: Some(TimeRange {
                from: ts(local(2025, 1, 1, 0, 0)),
                to: None,
            }),
        }))
        .unwrap()
        .into_inner();
    assert_eq!((report.hours, report.days), (3, 1), "{report:?}");
    assert_eq!(site.rollups("home"), before);

    // A year of hourly rows in one answer.
    let year_start = local(2024, 1, 1, 0, 0);
    let template = before.system_hours[0].clone();
    let year: Vec<rollups::SystemHour> =
        solarhub_hub::local_time::hours(TZ, year_start, local(2025, 1, 1, 0, 0))
            .into_iter()
            .map(|bucket| rollups::SystemHour {
                hour_start: bucket.hour.unwrap(),
                bucket_start: bucket.start,
                bucket_end: bucket.end,
                date: bucket.date,
                ..template.clone()
            })
            .collect();
    assert_eq!(year.len(), 8784, "2024 is a leap year");
    rollups::insert_rows(
        &mut hub.database.get().unwrap(),
        &RollupRows {
            system_hours: year,
            ..RollupRows::default()
        },
    )
    .unwrap();
    let began = std::time::Instant::now();
    let answer = energy(
        EnergyHistoryRequest {
            system_id: "home".into(),
            range: Some(TimeRange {
                from: ts(year_start),
                to: ts(local(2025, 1, 1, 0, 0)),
            }),
            ..Default::default()
        },
        false,
    )
    .unwrap()
    .into_inner()
    .buckets;
    println!(
        "a year of hourly rows: {} rows in {:?}",
        answer.len(),
        began.elapsed()
    );
    assert_eq!(answer.len(), 8784);
    assert!(
        answer.windows(2).all(|w| w[0].end == w[1].start),
        "contiguous, in order"
    );
}

/// Editing an attachment through the catalog re-rolls the time it covered: the battery array's
/// energy moves to the array it is attached to now.
fn editing_an_attachment_rolls_its_time_again(db: TestDb) {
    use solarhub_hub::catalog::BatteryArrayAttachment;
    use solarhub_hub::catalog::Repository;
    let mut site = Site::new(db, INSTALLATION);
    let mut readings = Vec::new();
    let mut ts = local(2025, 6, 1, 0, 0);
    while ts <= local(2025, 6, 2, 0, 0) {
        readings.push(reading("pack1", ts, &[("power_w", 500.0)]));
        readings.push(reading("inv1", ts, &[("pv_power_w", 100.0)]));
        ts += 60_000;
    }
    site.send(readings);
    site.roll();
    let discharge = |site: &Site, array: &str| {
        site.rollups("home")
            .array_days
            .iter()
            .find(|r| r.array_id == array && r.date == "2025-06-01")
            .and_then(|r| r.battery_discharge_kwh)
    };
    close(discharge(&site, "a1"), 6.25);
    // The move at 12:30 was a mistake: ba1 stayed on a1 all along.
    let repository = Repository::new(site.database.clone());
    let moved = local(2025, 6, 1, 12, 30);
    site.runtime
        .block_on(repository.delete::<BatteryArrayAttachment>(("ba1".into(), moved), false))
        .unwrap();
    let (first, _) = site
        .runtime
        .block_on(repository.get::<BatteryArrayAttachment>(("ba1".into(), local(2025, 1, 1, 0, 0))))
        .unwrap();
    site.runtime
        .block_on(repository.update(
            BatteryArrayAttachment {
                detached_at: None,
                ..first
            },
            vec!["detached_at".into()],
        ))
        .unwrap();
    site.roll();
    close(discharge(&site, "a1"), 12.0);
    assert_eq!(discharge(&site, "a2"), None);
    let rows = site.rollups("home");
    site.recompute("home");
    assert_eq!(site.rollups("home"), rows);
}

/// A collector whose clock jumped sends readings decades apart in one batch: the roller is asked
/// to roll the hours around each group, not every hour in between.
fn clock_jumps_do_not_roll_the_decades_between(db: TestDb) {
    let mut site = Site::new(db, INSTALLATION);
    let now = chrono::Utc::now().timestamp_millis();
    // A clock stuck in 2000 (the oldest a reading may be; 1970 is refused as too old), then right.
    let stuck = solarhub_hub::limits::EARLIEST_MS;
    site.send(vec![
        reading("inv1", stuck + 10_000, &[("pv_power_w", 100.0)]),
        reading("inv1", stuck + 20_000, &[("pv_power_w", 100.0)]),
        reading("inv1", now - 10_000, &[("pv_power_w", 100.0)]),
        reading("inv1", now, &[("pv_power_w", 100.0)]),
    ]);
    let pending = rollups::pending(&mut site.database.get().unwrap()).unwrap();
    let ranges: Vec<(i64, i64)> = pending.iter().map(|p| (p.from_ts, p.to_ts)).collect();
    assert_eq!(
        ranges,
        [(stuck + 10_000, stuck + 20_000), (now - 10_000, now)]
    );
    let report = site
        .runtime
        .block_on(roller::roll_pending(&site.database, Settings::default()))
        .unwrap();
    assert!(report.hours <= 6, "{report:?}");
}

/// Hubs sharing a database roll the same pending ranges at the same time without colliding, and
/// the rows are what one roll alone gives.
fn concurrent_rolls(db: TestDb) {
    let mut site = Site::new(db, INSTALLATION);
    let start = local(2025, 5, 10, 8, 0);
    let readings: Vec<IncomingReading> = (0..=2160)
        .map(|i| reading("inv1", start + i * 10_000, &[("pv_power_w", 1000.0)]))
        .collect();
    site.send(readings);
    let rolls: Vec<_> = (0..4)
        .map(|_| {
            let database = site.database.clone();
            std::thread::spawn(move || {
                let mut conn = database.get().unwrap();
                let pending = rollup::pending_by_system(&mut conn).unwrap();
                let Some(ranges) = pending.get("home") else {
                    return Ok(());
                };
                solarhub_hub::db::in_transaction(&mut conn, |conn| {
                    rollup::incremental::roll_system(
                        conn,
                        "home",
                        ranges,
                        Settings::default(),
                        Default::default(),
                    )
                })
                .map(|_| ())
            })
        })
        .collect();
    for roll in rolls {
        roll.join().unwrap().expect("every roll succeeds");
    }
    let rows = site.rollups("home");
    site.recompute("home");
    assert_eq!(site.rollups("home"), rows);
    close(rows.system_days[0].solar_kwh, 6.0);
}

/// The aggregates the roller folds as samples arrive (the 5-minute points, a pack's batteries' and
/// cells' hours) equal the ones a recompute makes from the raw samples: a followed device takes
/// its own new inputs, a pack those of its batteries and cells, and no other device's.
fn followed_aggregates_equal_a_recompute(db: TestDb) {
    use solarhub_hub::ingest::IncomingBattery;
    let mut site = Site::new(db, INSTALLATION);
    let start = local(2025, 6, 1, 5, 0);
    let polls = 600; // five hours, every 30 s
    for poll in 0..polls {
        let ts = start + poll * 30_000;
        let wobble = (poll % 7) as f64;
        let mut pack = reading(
            "pack1",
            ts,
            &[("power_w", -300.0 - wobble), ("soc_pct", 50.0 + wobble)],
        );
        let volts = |v: f64| BTreeMap::from([("voltage_v".to_owned(), v)]);
        pack.batteries = vec![IncomingBattery {
            index: 1,
            fields: BTreeMap::from([("voltage_v".to_owned(), 52.0 + wobble / 10.0)]),
            cells: vec![
                (1, volts(3.30 + wobble / 100.0)),
                (2, volts(3.31 - wobble / 100.0)),
            ],
            ..IncomingBattery::default()
        }];
        let inverter = reading(
            "inv1",
            ts,
            &[
                ("pv_power_w", 1000.0 + wobble),
                ("load_power_w", 400.0 - wobble),
            ],
        );
        site.send(vec![inverter, pack]);
        if poll % 4 == 3 {
            site.roll();
        }
    }
    site.roll();
    assert!(
        site.total_counts.get().devices_followed > 100,
        "the roller followed the devices: {:?}",
        site.total_counts.get()
    );
    let followed = crate::retention::aggregates(&mut site.database.get().unwrap(), 0);
    // Two devices' 5-minute points over five hours, and the battery's and two cells' hours.
    assert!(
        followed.len() >= 2 * 60 + 3 * 5,
        "{} aggregate rows",
        followed.len()
    );
    site.recompute("home");
    let made = crate::retention::aggregates(&mut site.database.get().unwrap(), 0);
    assert_eq!(
        followed, made,
        "the followed aggregates differ from a recompute's"
    );
}

/// A hub restarting (or taking the roller over) remembers nothing: the devices of the next pass
/// are rebuilt from their raw samples, most of them together from one read of the hours their
/// pending samples are in (a start at 10,000 devices is not twenty queries a device). Late
/// samples at an hour edge of four devices, one of which was silent for over an hour before
/// (its neighbour lies outside that read: rebuilt on its own), and later samples after them:
/// the rows equal a full recompute's.
fn a_restart_rebuilds_its_devices_together(db: TestDb) {
    let mut site = Site::new(db, INSTALLATION);
    let start = local(2025, 6, 1, 5, 0);
    let edge = local(2025, 6, 1, 7, 0);
    let late = |ts: i64| ts >= edge - 60_000 && ts < edge + 60_000;
    let mut held_back = Vec::new();
    for poll in 0..(4 * 180) {
        let ts = start + poll * 20_000;
        let wobble = (poll % 11) as f64;
        let mut readings = Vec::new();
        for (n, device) in ["inv1", "inv2", "inv3"].into_iter().enumerate() {
            // inv3 silent from 5:40 until a minute before the edge.
            if device == "inv3" && ts > local(2025, 6, 1, 5, 40) && ts < edge - 60_000 {
                continue;
            }
            readings.push(reading(
                device,
                ts,
                &[
                    ("pv_power_w", 900.0 + 100.0 * n as f64 + wobble),
                    (
                        "pv_energy_total_wh",
                        10_000.0 + poll as f64 * (5.0 + n as f64),
                    ),
                    ("grid_power_w", 200.0 - wobble),
                ],
            ));
        }
        readings.push(reading(
            "grid1",
            ts,
            &[
                ("power_w", 300.0 + wobble),
                ("import_total_wh", 50_000.0 + poll as f64 * 1.7),
            ],
        ));
        let (now, later): (Vec<_>, Vec<_>) = readings.into_iter().partition(|_| !late(ts));
        held_back.extend(later);
        site.send(now);
        if poll % 6 == 5 {
            site.roll();
        }
    }
    site.roll();
    site.roller.borrow_mut().forget();
    site.send(held_back);
    site.roll();
    let counts = site.last_counts.get();
    assert_eq!(
        counts.devices_rebuilt_together, 3,
        "inv1, inv2 and grid1 together, inv3 on its own: {counts:?}"
    );
    let rolled = site.rollups("home");
    site.recompute("home");
    assert_eq!(rolled, site.rollups("home"));
}

on_both_backends!(
    a_live_stream_rolls_what_arrived,
    a_restart_rebuilds_its_devices_together,
    followed_aggregates_equal_a_recompute,
    known_answers,
    dst_days,
    battery_array_moved_mid_day,
    history_api,
    concurrent_rolls,
    clock_jumps_do_not_roll_the_decades_between,
    editing_an_attachment_rolls_its_time_again,
);
