-- Seeding after the download: the bytes uploaded to peers (summed across restarts), when the
-- download completed (the start of the seeding time), and why seeding stopped (a ratio or a
-- time limit reached, or its submitter's "stop and keep"); NULL while it seeds.
ALTER TABLE tasks ADD COLUMN uploaded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN completed_at TEXT;
ALTER TABLE tasks ADD COLUMN seeding_stopped TEXT;
