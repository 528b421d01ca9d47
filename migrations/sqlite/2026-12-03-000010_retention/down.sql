DROP TABLE retention_holds;
DROP TABLE retention_marks;
DROP TABLE battery_bank_samples_5m;
DROP TABLE meter_samples_5m;
DROP TABLE energy_samples_5m;
