-- Who submitted the task (the gateway's user id): they, or an admin, may delete it and see
-- its full magnet. Tasks from before have none (admins only).
ALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL DEFAULT '';
