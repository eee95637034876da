//! What must hold after a chaos run, read from what the processes left on disk and in their
//! logs, and from `/proc`.

use std::collections::BTreeMap;
use std::path::Path;

/// Problems with task `id`'s payload on its node: each seed file must be there, byte-equal.
pub fn payload(seed: &Path, node_data: &Path, id: &str) -> Vec<String> {
    let out = node_data.join("downloads").join(id);
    let mut problems = Vec::new();
    for file in files_under(seed) {
        let Ok(rel) = file.strip_prefix(seed) else {
            continue;
        };
        match (std::fs::read(&file), std::fs::read(out.join(rel))) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(_), Ok(_)) => {
                problems.push(format!("{id}: {} differs from its seed", rel.display()))
            }
            (_, Err(e)) => problems.push(format!("{id}: {} not downloaded: {e}", rel.display())),
            (Err(e), _) => problems.push(format!("{id}: seed {} unreadable: {e}", rel.display())),
        }
    }
    problems
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// Problems with task `id`'s HLS folder: a finished VOD playlist that ffmpeg reads without a
/// word, `seconds` long (within a second and a half).
pub fn hls(node_data: &Path, id: &str, seconds: f64) -> Vec<String> {
    let dir = node_data.join("m3u8").join(id);
    match crate::video::assert_vod(&dir, seconds, 1.5) {
        Ok(()) => Vec::new(),
        Err(e) => vec![format!("{id}: HLS {e:#}")],
    }
}

/// What a crashed job may leave in a node's `m3u8/`: `.<task>.partial` folders, and
/// `.progressive` marks in finished folders.
pub fn leftovers(node_data: &Path) -> Vec<String> {
    let m3u8 = node_data.join("m3u8");
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&m3u8).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".partial") {
            problems.push(format!("{} left", m3u8.join(&name).display()));
        } else if entry
            .path()
            .join(magnet_core::hls::PROGRESSIVE_MARKER)
            .exists()
        {
            problems.push(format!(
                "{name}: its {} mark left",
                magnet_core::hls::PROGRESSIVE_MARKER
            ));
        }
    }
    problems
}

/// ffmpeg processes working under `dir` whose parent is none of `parents` (a transcoder that
/// died and left its ffmpeg running); their pids and command lines.
pub fn orphaned_ffmpeg(dir: &Path, parents: &[u32]) -> Vec<String> {
    let dir = dir.display().to_string();
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_ffmpeg = args
            .first()
            .is_some_and(|a| a.ends_with("ffmpeg") || a.ends_with("ffprobe"));
        if !is_ffmpeg || !args.iter().any(|a| a.contains(&dir)) {
            continue;
        }
        let ppid = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| {
                let after = s.rsplit_once(')').map(|(_, r)| r.to_owned())?;
                after.split_whitespace().nth(1)?.parse::<u32>().ok()
            });
        if ppid.is_none_or(|p| !parents.contains(&p)) {
            orphans.push(format!(
                "ffmpeg pid {pid} (parent {ppid:?}): {}",
                args.join(" ")
            ));
        }
    }
    orphans
}

/// How many times each task's job ran to completion: the transcoders' `job done` lines in
/// every log under `logs` (a log is appended to across restarts).
pub fn completions(logs: &Path) -> BTreeMap<String, usize> {
    let mut done = BTreeMap::new();
    for file in files_under(logs) {
        if !file
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("transcoder"))
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines().map(strip_ansi) {
            if !line.contains(" job done") {
                continue;
            }
            if let Some(task) = line
                .split(|c: char| c.is_whitespace() || c == '{' || c == '}' || c == ',')
                .find_map(|w| w.strip_prefix("task="))
            {
                *done.entry(task.to_owned()).or_default() += 1;
            }
        }
    }
    done
}

/// `line` without terminal colour codes (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_count_job_done_lines_per_task() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("node-1-transcoder-1.log"),
            "2026-12-02T10:00:00Z  INFO transcode: magnet_transcoder::worker: job done segments=4 task=task_1 node=node-1 attempt=1\n\
             \u{1b}[2m2026\u{1b}[0m INFO \u{1b}[1mtranscode\u{1b}[0m: job done segments=3 \u{1b}[3mtask\u{1b}[0m\u{1b}[2m=\u{1b}[0mtask_2\n\
             INFO transcode: job failed; will retry task=task_3\n",
        )?;
        std::fs::write(
            dir.path().join("node-1-transcoder-2.log"),
            "INFO transcode: magnet_transcoder::worker: job done task=task_1 attempt=2\n",
        )?;
        std::fs::write(dir.path().join("gateway.log"), "job done task=task_9\n")?;
        let done = completions(dir.path());
        assert_eq!(done.get("task_1"), Some(&2));
        assert_eq!(done.get("task_2"), Some(&1));
        assert_eq!(done.get("task_3"), None);
        assert_eq!(done.get("task_9"), None, "only transcoders' logs count");
        Ok(())
    }
}
