//! Messages users read (task errors) are often a program's words about files, and carry the
//! node's absolute paths. [`paths`] swaps each known path for what the user knows it as.

/// `message` with every occurrence of each `(path, shown)` replaced by `shown`, longest paths
/// first (so a file's path goes before its folder's). Empty paths are ignored.
pub fn paths(message: &str, known: &[(&str, &str)]) -> String {
    let mut known: Vec<&(&str, &str)> = known.iter().filter(|(p, _)| !p.is_empty()).collect();
    known.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let mut out = message.to_owned();
    for (path, shown) in known {
        out = out.replace(path, shown);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn files_become_their_names_and_folders_vanish() {
        let msg = "ffprobe: /data/downloads/task_1/Show/ep.mkv: Invalid data (in /data/m3u8)";
        let out = super::paths(
            msg,
            &[
                ("/data/", ""),
                ("/data/downloads/task_1/Show/ep.mkv", "Show/ep.mkv"),
                ("", "x"),
            ],
        );
        assert_eq!(out, "ffprobe: Show/ep.mkv: Invalid data (in m3u8)");
    }
}
