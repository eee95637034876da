//! Which files the streamer serves, and nothing else: `m3u8/<task_id>/<file>` of this node.
//!
//! A request names a URL (relative `/video/<task_id>/<file>` or absolute `http://…/video/…`).
//! Its path is percent-decoded once and must then be exactly `/video/<task_id>/<file>` with a
//! valid task id, a file name of `[A-Za-z0-9._-]` not starting with a dot (optionally inside one
//! `v<digits>/` folder), and an allowed extension. The file is then opened without following
//! symlinks, after checking that neither the task folder nor the file is a symlink and that
//! the canonical path stays inside the node's `m3u8/` folder.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use magnet_core::hls::PROGRESSIVE_MARKER;
use magnet_core::{Reason, TaskId};

/// Extensions served, with their content types.
const TYPES: &[(&str, &str)] = &[
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("ts", "video/mp2t"),
    ("m4s", "video/iso.segment"),
    ("mp4", "video/mp4"),
    ("vtt", "text/vtt"),
];

/// Why a file request gets no file; [`FileError::reason`] gives each its status on the data
/// channel and on the relay alike.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("bad request path {0:?}: expected /video/<task_id>/<file>")]
    BadPath(String),
    #[error("file type not served: {0:?}")]
    Extension(String),
    #[error("file not found")]
    NotFound,
    #[error("refused: {0}")]
    Refused(&'static str),
    #[error("file is larger than the {0} MB limit")]
    TooLarge(u64),
    #[error("cannot read the file: {0}")]
    Io(String),
    #[error("segment not made yet; ask again")]
    NotYet,
}

impl FileError {
    /// The one table of what a refusal is, for both ways a file goes out: its status on the
    /// data channel (`Reason::http_status`) and its gRPC code and reason for the relay.
    pub fn reason(&self) -> Reason {
        match self {
            Self::BadPath(_) | Self::Extension(_) => Reason::InvalidArgument,
            Self::Refused(_) => Reason::FileRefused,
            Self::NotFound => Reason::FileNotFound,
            Self::TooLarge(_) => Reason::FileTooLarge,
            Self::Io(_) => Reason::Internal,
            Self::NotYet => Reason::SegmentNotReady,
        }
    }
}

/// A validated request for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub task: TaskId,
    /// e.g. `index0.ts` or `v1/index.m3u8`
    pub file: String,
}

impl FileRef {
    /// Validates a task id and file name (as the gRPC FileService receives them).
    pub fn new(task: &str, file: &str) -> Result<Self, FileError> {
        let bad = || FileError::BadPath(format!("/video/{task}/{file}"));
        let task = TaskId::parse(task).map_err(|_| bad())?;
        let parts: Vec<&str> = file.split('/').collect();
        let name_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 128
                && !p.starts_with('.')
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        };
        let folder_ok = |p: &str| magnet_core::hls::variant_index(p).is_some();
        let ok = match parts.as_slice() {
            [name] => name_ok(name),
            [folder, name] => folder_ok(folder) && name_ok(name),
            _ => false,
        };
        if !ok {
            return Err(bad());
        }
        let ext = Path::new(file)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if !TYPES.iter().any(|(e, _)| *e == ext) {
            return Err(FileError::Extension(file.to_owned()));
        }
        Ok(Self {
            task,
            file: file.to_owned(),
        })
    }

    /// Parses a data-channel request's URL (`ts` of `hijackReq`), relative or absolute.
    pub fn from_url(url: &str) -> Result<Self, FileError> {
        let bad = || FileError::BadPath(url.to_owned());
        if url.len() > 2048 {
            return Err(bad());
        }
        let path = if url.starts_with('/') {
            url.split(['?', '#']).next().unwrap_or_default().to_owned()
        } else {
            let parsed = url::Url::parse(url).map_err(|_| bad())?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(bad());
            }
            parsed.path().to_owned()
        };
        // Decode once; whatever decoding produces must still be a plain name.
        let decoded = percent_encoding::percent_decode_str(&path)
            .decode_utf8()
            .map_err(|_| bad())?;
        let rest = decoded.strip_prefix("/video/").ok_or_else(bad)?;
        let (task, file) = rest.split_once('/').ok_or_else(bad)?;
        Self::new(task, file).map_err(|e| match e {
            FileError::BadPath(_) => bad(),
            other => other,
        })
    }

    /// True for playlists and subtitles (the original answers them with `hijackRespText`).
    pub fn is_text(&self) -> bool {
        matches!(self.extension(), "m3u8" | "vtt")
    }

    /// The content type the file goes out with, from its extension (see `TYPES`).
    pub fn content_type(&self) -> &'static str {
        TYPES
            .iter()
            .find(|(e, _)| *e == self.extension())
            .map_or("application/octet-stream", |(_, t)| t)
    }

    fn extension(&self) -> &str {
        Path::new(&self.file)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
    }
}

/// The node's `m3u8/` folder.
#[derive(Clone)]
pub struct Root {
    dir: PathBuf,
    max_bytes: u64,
    maker: Option<std::sync::Arc<Maker>>,
    plays: Option<std::sync::Arc<crate::plays::Plays>>,
}

/// Asks the transcoder working on a progressive task for a segment not made yet
/// (`subjects::hls_want`), waiting at most `wait`.
pub struct Maker {
    pub client: async_nats::Client,
    pub node: String,
    pub wait: std::time::Duration,
}

impl Maker {
    /// Whether the segment is in place now (`Ok(true)`), not in the task's plan (`NotFound`),
    /// or still coming (`NotYet`).
    async fn want(&self, r: &FileRef) -> Result<(), FileError> {
        use magnet_proto::v1 as pb;
        use prost::Message as _;
        let (variant, file) = r.file.split_once('/').unwrap_or(("", &r.file));
        let subject = magnet_runtime::subjects::hls_want(&self.node, r.task.as_str(), variant);
        let ask = pb::SegmentWanted {
            task_id: r.task.to_string(),
            file: file.to_owned(),
            wait_ms: u32::try_from(self.wait.as_millis()).unwrap_or(u32::MAX),
        };
        let request = self.client.request(subject, ask.encode_to_vec().into());
        let reply = match tokio::time::timeout(
            self.wait + std::time::Duration::from_secs(1),
            request,
        )
        .await
        {
            Ok(Ok(m)) => m,
            // No responders (no transcoder holds the job right now), or no answer in time.
            Ok(Err(e)) => {
                tracing::debug!(error = %e, file = %r.file, "segment request unanswered");
                return Err(FileError::NotYet);
            }
            Err(_) => return Err(FileError::NotYet),
        };
        let reply = pb::SegmentReply::decode(reply.payload).map_err(|_| FileError::NotYet)?;
        match reply.outcome() {
            pb::SegmentOutcome::Ready => Ok(()),
            pb::SegmentOutcome::NotInPlan => Err(FileError::NotFound),
            _ => Err(FileError::NotYet),
        }
    }
}

/// The canonical form of `dir`, which may not exist yet: its nearest existing ancestor's
/// canonical path with the rest appended.
fn canonical_to_be(dir: &Path) -> std::io::Result<PathBuf> {
    let mut missing = Vec::new();
    let mut at = dir;
    loop {
        match at.canonicalize() {
            Ok(base) => {
                return Ok(missing
                    .iter()
                    .rev()
                    .fold(base, |path, part| path.join(part)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (at.parent(), at.file_name()) else {
                    return Err(e);
                };
                missing.push(name.to_owned());
                at = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
            }
            Err(e) => return Err(e),
        }
    }
}

impl Root {
    /// `dir` is canonicalised once. The streamer only reads, on a volume mounted read-only
    /// (the chart's): a folder the node's downloader has not made yet is taken as it will be,
    /// and its files are "not found" until then.
    pub fn new(dir: &Path, max_file_mb: u64) -> std::io::Result<Self> {
        Ok(Self {
            dir: canonical_to_be(dir)?,
            max_bytes: max_file_mb.saturating_mul(1024 * 1024),
            maker: None,
            plays: None,
        })
    }

    /// Segments of progressive tasks that are not made yet are asked for through `maker`.
    pub fn with_maker(mut self, maker: Maker) -> Self {
        self.maker = Some(std::sync::Arc::new(maker));
        self
    }

    /// Every file served tells the node's downloader its task is being played.
    pub fn with_plays(mut self, plays: crate::plays::Plays) -> Self {
        self.plays = Some(std::sync::Arc::new(plays));
        self
    }

    /// Validates a data-channel request's URL and opens its file.
    pub async fn open_url(&self, url: &str) -> Result<(FileRef, tokio::fs::File, u64), FileError> {
        let file_ref = FileRef::from_url(url)?;
        let (file, len) = self.open(&file_ref).await?;
        Ok((file_ref, file, len))
    }

    /// Opens a file for reading, refusing anything outside `m3u8/<task_id>/` and any symlink.
    /// A segment of a task still being made progressively is asked for and waited for
    /// (bounded); still missing then, it is [`FileError::NotYet`].
    pub async fn open(&self, r: &FileRef) -> Result<(tokio::fs::File, u64), FileError> {
        let opened = self.open_made(r).await;
        if opened.is_ok()
            && let Some(plays) = &self.plays
        {
            plays.notice(r.task.as_str()).await;
        }
        opened
    }

    async fn open_made(&self, r: &FileRef) -> Result<(tokio::fs::File, u64), FileError> {
        match self.open_now(r).await {
            Err(FileError::NotFound) => {}
            other => return other,
        }
        let Some(maker) = &self.maker else {
            return Err(FileError::NotFound);
        };
        // The marker of the folder the file is in: the task's, or a chosen video's `v<k>/`.
        let folder = match r.file.split_once('/') {
            Some((variant, _)) => self.dir.join(r.task.as_str()).join(variant),
            None => self.dir.join(r.task.as_str()),
        };
        if !tokio::fs::try_exists(folder.join(PROGRESSIVE_MARKER))
            .await
            .unwrap_or(false)
        {
            return Err(FileError::NotFound);
        }
        maker.want(r).await?;
        self.open_now(r).await.map_err(|e| match e {
            FileError::NotFound => FileError::NotYet,
            other => other,
        })
    }

    async fn open_now(&self, r: &FileRef) -> Result<(tokio::fs::File, u64), FileError> {
        let task_dir = self.dir.join(r.task.as_str());
        let path = task_dir.join(&r.file);
        let io = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                FileError::NotFound
            } else {
                FileError::Io(e.to_string())
            }
        };
        // No component below the root may be a symlink.
        let mut at = self.dir.clone();
        for part in std::iter::once(r.task.as_str()).chain(r.file.split('/')) {
            at.push(part);
            let meta = tokio::fs::symlink_metadata(&at).await.map_err(io)?;
            if meta.file_type().is_symlink() {
                return Err(FileError::Refused("symbolic links are not served"));
            }
        }
        let canonical = tokio::fs::canonicalize(&path).await.map_err(io)?;
        if !canonical.starts_with(&self.dir) {
            return Err(FileError::Refused("outside the node's media folder"));
        }
        let std_file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&canonical)
            .map_err(io)?;
        let meta = std_file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(FileError::NotFound);
        }
        if meta.len() > self.max_bytes {
            return Err(FileError::TooLarge(self.max_bytes / (1024 * 1024)));
        }
        Ok((tokio::fs::File::from_std(std_file), meta.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_originals_urls() {
        let r = FileRef::from_url("/video/task_1640995200123/index.m3u8").expect("relative");
        assert_eq!(
            (r.task.as_str(), r.file.as_str(), r.is_text()),
            ("task_1640995200123", "index.m3u8", true)
        );
        let r =
            FileRef::from_url("http://127.0.0.1:8080/video/task_1/index0.ts").expect("absolute");
        assert_eq!(
            (r.file.as_str(), r.is_text(), r.content_type()),
            ("index0.ts", false, "video/mp2t")
        );
        assert_eq!(
            FileRef::from_url("/video/task_1/v1/index.m3u8").map(|r| r.file),
            Ok("v1/index.m3u8".into())
        );
    }

    #[test]
    fn refuses_hostile_urls() {
        for bad in [
            "/video/task_1/../../etc/passwd",
            "/video/task_1/%2e%2e/secret.ts",
            "/video/task_1/%2E%2E%2Fsecret.ts",
            "/video/../task_1/index.m3u8",
            "/etc/passwd",
            "/video/task_1//etc/passwd",
            "/video/task_1/.hidden.ts",
            "/video/task_x/index.m3u8",
            "/video/task_1/a/b/c.ts",
            "/video/task_1/index.m3u8%00.ts",
            "file:///video/task_1/index.m3u8",
            "/video/task_1/%zz.ts",
        ] {
            assert!(
                matches!(FileRef::from_url(bad), Err(FileError::BadPath(_))),
                "{bad:?} -> {:?}",
                FileRef::from_url(bad)
            );
        }
        assert!(matches!(
            FileRef::from_url("/video/task_1/secret.txt"),
            Err(FileError::Extension(_))
        ));
    }

    /// The chart mounts the node's volume read-only in the streamer, which may start before
    /// the downloader made `m3u8/`: it must not try to make it, and serves it once made.
    #[tokio::test]
    async fn a_folder_not_made_yet_is_served_once_made() {
        let dir = tempfile::tempdir().expect("tmp");
        let m3u8 = dir.path().join("m3u8");
        let root = Root::new(&m3u8, 10).expect("root");
        assert!(!m3u8.exists(), "the streamer made the folder");
        let file = FileRef::new("task_1", "index.m3u8").expect("valid");
        assert!(matches!(root.open(&file).await, Err(FileError::NotFound)));
        std::fs::create_dir_all(m3u8.join("task_1")).expect("mkdir");
        std::fs::write(m3u8.join("task_1/index.m3u8"), b"#EXTM3U\n").expect("write");
        assert_eq!(root.open(&file).await.map(|(_, len)| len), Ok(8));
    }

    #[tokio::test]
    async fn symlinks_and_escapes_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let m3u8 = dir.path().join("m3u8");
        std::fs::create_dir_all(m3u8.join("task_1")).expect("mkdir");
        std::fs::write(dir.path().join("secret.ts"), b"secret").expect("write");
        std::fs::write(m3u8.join("task_1/index0.ts"), b"video").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret.ts"), m3u8.join("task_1/link.ts"))
            .expect("symlink");
        std::os::unix::fs::symlink(dir.path(), m3u8.join("task_2")).expect("symlink dir");
        let root = Root::new(&m3u8, 10).expect("root");
        let ok = FileRef::new("task_1", "index0.ts").expect("valid");
        assert_eq!(root.open(&ok).await.map(|(_, len)| len), Ok(5));
        let link = FileRef::new("task_1", "link.ts").expect("valid");
        assert!(matches!(root.open(&link).await, Err(FileError::Refused(_))));
        let via_dir = FileRef::new("task_2", "secret.ts").expect("valid");
        assert!(matches!(
            root.open(&via_dir).await,
            Err(FileError::Refused(_))
        ));
        let missing = FileRef::new("task_3", "index.m3u8").expect("valid");
        assert!(matches!(
            root.open(&missing).await,
            Err(FileError::NotFound)
        ));
    }
}
