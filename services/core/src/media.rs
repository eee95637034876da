//! Which files of a torrent are videos and subtitles, by extension: the downloader sends
//! only those to the transcoders, which pick among them.

/// Extensions of the video files transcoded.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mkv", "webm", "avi", "mov", "ts", "m2ts", "mts", "flv", "wmv", "mpg", "mpeg",
    "ogv", "3gp",
];
/// Extensions of the subtitle files converted to WebVTT.
pub const SUBTITLE_EXTENSIONS: &[&str] = &["srt", "ass", "ssa", "vtt"];

/// The lowercase extension of a file name (`""` when none).
pub fn extension(name: &str) -> String {
    std::path::Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// True for a file the transcoders can turn into HLS, judged by its extension in any case.
pub fn is_video(name: &str) -> bool {
    VIDEO_EXTENSIONS.contains(&extension(name).as_str())
}

/// True for a subtitle file that is converted to WebVTT, judged by its extension in any case.
pub fn is_subtitle(name: &str) -> bool {
    SUBTITLE_EXTENSIONS.contains(&extension(name).as_str())
}

#[cfg(test)]
mod tests {
    #[test]
    fn by_extension_whatever_the_case() {
        assert!(super::is_video("Show/Ep 1.MKV"));
        assert!(super::is_subtitle("Show/Subs/ep1.en.srt"));
        assert!(!super::is_video("readme.txt") && !super::is_subtitle("cover.jpg"));
        assert!(!super::is_video("mkv"));
    }
}
