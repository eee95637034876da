//! Chaos, short (issue 17): 2 nodes of 2 transcoders, 6 tasks (remux, re-encode, a video with
//! subtitles and a text file) and 4 viewers (P2P and the relay) while every kind of process —
//! transcoder, downloader, nats-server, streamer, gateway, signaling — is killed with SIGKILL
//! twice and started again. `cargo xtask chaos` runs the long one.

use magnet_tests::chaos::{Plan, run};
use magnet_tests::{init_logging, stack};

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_lost_when_every_kind_of_process_is_killed() -> anyhow::Result<()> {
    init_logging();
    let dir = stack::artefacts("chaos-short")?;
    for sub in ["stack", "logs", "src", "clips"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
    let report = run(&Plan::short(), &dir).await?;
    eprintln!("{}", report.line());
    assert_eq!(report.kills, 12, "every kind killed twice");
    assert_eq!(report.lost, 0, "{:#?}", report.problems);
    assert_eq!(report.duplicated, 0, "{:#?}", report.problems);
    assert_eq!(report.stalls_over_10s, 0, "{:#?}", report.problems);
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    Ok(())
}
