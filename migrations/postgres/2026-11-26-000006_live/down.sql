DROP TABLE latest_readings;
