-- Data quality: what the collectors report about their polls (PollTally in every batch), summed
-- per device into 5-minute UTC buckets. `counter` is one of polls, answered, timeouts, exceptions,
-- other_failures, or dropped_<reason> (sentinel, out_of_range, above_rating, counter_backwards).
-- Written in the batch's transaction, so a replayed batch counts nothing twice.
CREATE TABLE poll_counts (
    device_id TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    counter TEXT NOT NULL,
    amount BIGINT NOT NULL,
    PRIMARY KEY (device_id, bucket_start, counter)
);
CREATE INDEX poll_counts_bucket_start ON poll_counts (bucket_start);
