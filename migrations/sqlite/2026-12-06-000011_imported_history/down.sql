DROP TABLE battery_cell_samples_1h;
DROP TABLE battery_unit_samples_1h;
DROP TABLE aggregates_made;
DROP TABLE retention_imported_marks;
DROP TABLE imported_spans;
