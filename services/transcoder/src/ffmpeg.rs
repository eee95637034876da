//! Running ffmpeg: progress from `-progress pipe:1` (`out_time_us` against the probed
//! duration), the last lines of stderr kept for the error message, killed on cancel, and
//! killed with the transcoder when it dies without a chance to stop them (`setpriv`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::untrusted::Budget;
use crate::{Error, Result};

/// The last `n` non-empty lines of `text`, joined with " | ".
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// A command for `program` (ffmpeg, ffprobe) that dies with this process, started with
/// [`spawn`]. `kill_on_drop` covers every way the transcoder stops but `kill -9` and a crash;
/// for those the child runs under util-linux's `setpriv --pdeathsig KILL` (in every Debian
/// system, the images included), since `PR_SET_PDEATHSIG` needs code between fork and exec,
/// which this crate does not write (no `unsafe`).
pub fn command(program: &str) -> Command {
    match setpriv() {
        Some(setpriv) => {
            let mut cmd = Command::new(setpriv);
            cmd.args(["--pdeathsig", "KILL", "--", program]);
            cmd
        }
        None => Command::new(program),
    }
}

fn setpriv() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let found = std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("setpriv"))
                    .find(|p| p.is_file())
            });
            if found.is_none() {
                tracing::warn!(
                    "setpriv is not installed: a killed transcoder leaves its ffmpeg running"
                );
            }
            found
        })
        .as_deref()
}

type SpawnRequest = (
    tokio::runtime::Handle,
    Command,
    oneshot::Sender<std::io::Result<Child>>,
);

/// Starts `cmd` from one thread that lives as long as the process. The parent-death signal
/// is sent when the *thread* that forked the child ends, not the process, and tokio's threads
/// come and go (a worker that enters `block_in_place`, as librqbit's disk writes do, is
/// replaced and later retired): started from one of them, an ffmpeg would be killed some
/// seconds into its run.
pub async fn spawn(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<std::sync::mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        let started = std::thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                for (runtime, mut cmd, reply) in rx {
                    let _entered = runtime.enter();
                    let _ = reply.send(cmd.spawn());
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "no thread to start children from; starting them in place");
        }
        tx
    });
    let (reply, answer) = oneshot::channel();
    let runtime = tokio::runtime::Handle::current();
    if let Err(std::sync::mpsc::SendError((_, mut cmd, _))) = spawner.send((runtime, cmd, reply)) {
        return cmd.spawn();
    }
    answer
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the child-spawner thread is gone")))
}

/// Seconds of output written, from one `-progress` line.
fn out_time(line: &str) -> Option<f64> {
    let v = line
        .strip_prefix("out_time_us=")
        .or_else(|| line.strip_prefix("out_time_ms="))?;
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|us| *us >= 0)
        .map(|us| us as f64 / 1e6)
}

/// What one run may spend: its [`Budget`], checked against what it writes (a folder or a
/// file); `name`
/// (the input's name in the torrent) is for the error message.
pub struct Guard<'a> {
    pub budget: Budget,
    /// Where the run writes.
    pub out: &'a Path,
    pub name: &'a str,
}

/// How often the output folder's size is measured.
const MEASURE_EVERY: Duration = Duration::from_millis(500);

/// Runs `ffmpeg args`, calling `progress(percent)` as output advances (when `duration` is
/// known). Cancellation kills ffmpeg and returns [`Error::Cancelled`]; a run past its
/// guard's time or output budget is killed with [`Error::TooSlow`] / [`Error::TooLarge`].
pub async fn run(
    ffmpeg: &str,
    args: &[String],
    duration: Option<f64>,
    mut progress: impl FnMut(f64),
    guard: &Guard<'_>,
    cancel: &CancellationToken,
) -> Result<()> {
    let on_line = |line: &str| {
        if let (Some(t), Some(d)) = (out_time(line), duration) {
            progress((t * 100.0 / d).clamp(0.0, 100.0));
        }
    };
    run_lines(ffmpeg, args, on_line, guard, cancel).await
}

/// Runs `ffmpeg args`, handing each line it writes on stdout to `on_line` (progress, or the
/// segment muxer's list of finished segments); killed on cancel or past its guard's budget.
pub async fn run_lines(
    ffmpeg: &str,
    args: &[String],
    mut on_line: impl FnMut(&str),
    guard: &Guard<'_>,
    cancel: &CancellationToken,
) -> Result<()> {
    let started = Instant::now();
    let mut cmd = command(ffmpeg);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = spawn(cmd).await.map_err(|source| Error::Spawn {
        program: ffmpeg.into(),
        source,
    })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    // Keep the last lines of stderr for the error message.
    let stderr_task = tokio::spawn(async move {
        let mut buf = String::new();
        let mut kept: VecDeque<String> = VecDeque::new();
        if let Some(mut err) = stderr {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
                while let Some(pos) = buf.find('\n') {
                    kept.push_back(buf[..pos].to_owned());
                    buf.drain(..=pos);
                    if kept.len() > 20 {
                        kept.pop_front();
                    }
                }
            }
        }
        kept.push_back(buf);
        tail(&kept.into_iter().collect::<Vec<_>>().join("\n"), 5)
    });

    let read_progress = async {
        if let Some(out) = stdout {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                on_line(&line);
            }
        }
    };
    let over_budget = async {
        let mut tick = tokio::time::interval(MEASURE_EVERY);
        loop {
            tick.tick().await;
            if started.elapsed() > guard.budget.time {
                return Error::TooSlow {
                    name: guard.name.into(),
                    secs: guard.budget.time.as_secs(),
                };
            }
            if size_of(guard.out).await > guard.budget.bytes {
                return Error::TooLarge {
                    name: guard.name.into(),
                    mb: guard.budget.bytes / (1024 * 1024),
                };
            }
        }
    };
    tokio::select! {
        _ = read_progress => {}
        e = over_budget => {
            let _ = child.kill().await;
            return Err(e);
        }
        _ = cancel.cancelled() => {
            let _ = child.kill().await;
            return Err(Error::Cancelled);
        }
    }
    let status = tokio::select! {
        s = child.wait() => s.map_err(|source| Error::Spawn { program: ffmpeg.into(), source })?,
        _ = cancel.cancelled() => {
            let _ = child.kill().await;
            return Err(Error::Cancelled);
        }
    };
    let stderr = stderr_task.await.unwrap_or_default();
    if !status.success() {
        return Err(Error::Ffmpeg {
            status: status.to_string(),
            stderr,
        });
    }
    Ok(())
}

/// Bytes of the file at `path`, or of the files in that folder and its subfolders (0 where
/// unreadable).
async fn size_of(path: &Path) -> u64 {
    match tokio::fs::metadata(path).await {
        Ok(m) if m.is_file() => return m.len(),
        Ok(_) => {}
        Err(_) => return 0,
    }
    let mut total = 0u64;
    let mut stack = vec![path.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(mut entries) = tokio::fs::read_dir(&d).await else {
            continue;
        };
        while let Ok(Some(e)) = entries.next_entry().await {
            match e.metadata().await {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total = total.saturating_add(m.len()),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_progress_lines() {
        assert_eq!(out_time("out_time_us=1500000"), Some(1.5));
        assert_eq!(out_time("out_time_ms=2000000"), Some(2.0));
        assert_eq!(out_time("out_time_us=N/A"), None);
        assert_eq!(out_time("frame=10"), None);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b | c");
        assert_eq!(tail("", 3), "");
    }
}
