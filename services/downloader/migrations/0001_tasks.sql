-- The original's tasks table, plus node_id, info_hash (unique per node), error, and what a
-- restart needs: the magnet's peer hints and whether the transcode job went out.
CREATE TABLE tasks (
    task_id          TEXT PRIMARY KEY,
    magnet_url       TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    progress         REAL NOT NULL DEFAULT 0,
    speed            INTEGER NOT NULL DEFAULT 0,
    size             INTEGER NOT NULL DEFAULT 0,
    downloaded       INTEGER NOT NULL DEFAULT 0,
    torrent_name     TEXT,
    torrent_files    TEXT NOT NULL DEFAULT '[]', -- JSON array of paths inside the torrent
    m3u8_file_path   TEXT,
    srts             TEXT NOT NULL DEFAULT '[]', -- JSON array
    segments         TEXT NOT NULL DEFAULT '[]', -- JSON array
    metadata         TEXT NOT NULL DEFAULT '{}', -- JSON object (transcode_path, ...)
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    node_id          TEXT NOT NULL,
    info_hash        TEXT NOT NULL,
    error            TEXT,
    detail           TEXT NOT NULL DEFAULT '',
    peers            INTEGER NOT NULL DEFAULT 0,
    peer_hints       TEXT NOT NULL DEFAULT '[]', -- JSON array of host:port from x.pe
    job_published_at TEXT,
    UNIQUE (node_id, info_hash)
);

CREATE INDEX tasks_status ON tasks (status);
