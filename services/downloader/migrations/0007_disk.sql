-- The node's disk quota: a pinned task is never evicted; `last_played_at` (from the streamer's
-- notices) orders the others and keeps one being played; `payload_evicted` says its payload
-- went (its HLS still plays); `disk_bytes` is what its folders hold, as last measured.
ALTER TABLE tasks ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN last_played_at TEXT;
ALTER TABLE tasks ADD COLUMN payload_evicted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN disk_bytes INTEGER NOT NULL DEFAULT 0;
