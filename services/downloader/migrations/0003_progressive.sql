-- Progressive playback: the task plays while it downloads (`playable`); a transcode that made
-- every segment before the download ended is kept (`hls_ready`) until the download ends, and
-- the task then goes straight to ready. The transcode's percent has its own column.
ALTER TABLE tasks ADD COLUMN playable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN hls_ready INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN transcode_progress REAL NOT NULL DEFAULT 0;
