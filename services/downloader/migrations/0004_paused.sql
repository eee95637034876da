-- Pause and resume: a paused task keeps its status (pending or downloading) and moves no
-- bytes; its driver is stopped and its torrent paused, also after a restart.
ALTER TABLE tasks ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
