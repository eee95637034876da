-- Retrying a task in error: each retry is an attempt of its own, whose transcode job gets its
-- own message id (JetStream would drop a job with the first attempt's id as a duplicate).
ALTER TABLE tasks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
