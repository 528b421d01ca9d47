DROP TABLE meter_samples;
DROP TABLE battery_cell_samples;
DROP TABLE battery_unit_samples;
DROP TABLE battery_bank_samples;
DROP TABLE array_samples;
DROP TABLE energy_samples;
