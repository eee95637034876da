-- Choosing what to play: the files' sizes (beside their paths), the video its submitter chose
-- (a file index; NULL: the largest), and each video's own transcode state by file index.
ALTER TABLE tasks ADD COLUMN file_sizes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN chosen INTEGER;
ALTER TABLE tasks ADD COLUMN video_states TEXT NOT NULL DEFAULT '{}';
