//! The layout of a task's HLS folder that the downloader, the transcoders and the streamer all
//! rely on: the marks put in a folder, and the folders of videos chosen apart.

/// Marks a folder whose segments are still being made (a progressive job): the transcoder
/// puts it there, the streamer asks for a missing segment while it is there, and the
/// downloader removes it to stop the job.
pub const PROGRESSIVE_MARKER: &str = ".progressive";

/// Put in a folder by the downloader when its video is no longer wanted (its submitter chose
/// another): the job for that folder, queued or running, stops without a result.
pub const STOP_MARKER: &str = ".stop";

/// The folder, under the task's, of the video at file index `index` chosen apart.
pub fn variant_folder(index: u32) -> String {
    format!("v{index}")
}

/// The file index a chosen video's folder name stands for (`v` and its digits), if it is one.
pub fn variant_index(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('v')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_videos_folders() {
        assert_eq!(variant_folder(3), "v3");
        assert_eq!(variant_index("v3"), Some(3));
        assert_eq!(variant_index(&variant_folder(u32::MAX)), Some(u32::MAX));
        for not in ["v", "3", "x3", "v3a", "v+3", "v-1", "v99999999999", ""] {
            assert_eq!(variant_index(not), None, "{not:?}");
        }
    }
}
