DROP TABLE rollup_pending;
DROP TABLE latest_readings;
