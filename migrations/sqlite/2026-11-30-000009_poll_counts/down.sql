DROP TABLE poll_counts;
