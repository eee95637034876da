//! `cargo xtask bench [name…]`: benchmarks in release mode. Each compares our service with a
//! baseline measured in the same run and ends with one `bench <name>: key=value …` line.

use crate::system::{self, cargo};

const ALL: &[&str] = &[
    "download",
    "transcode",
    "datachannel",
    "gateway",
    "progressive",
    "seek",
    "viewers",
    "browser",
];

pub fn run(names: &[String]) -> anyhow::Result<()> {
    system::ensure_programs()?;
    let names: Vec<&str> = if names.is_empty() {
        ALL.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    for name in &names {
        if !ALL.contains(name) {
            anyhow::bail!("unknown benchmark {name:?}; known: {}", ALL.join(", "));
        }
    }
    if names.contains(&"gateway") || names.contains(&"viewers") {
        // The gateway benchmark runs the services as processes, the UI embedded.
        crate::web::build(false)?;
        system::run(cargo().args(["build", "--release", "--workspace", "--bins"]))?;
    }
    if names.contains(&"browser") {
        // Chromium loads the player from the gateway, which embeds the UI in release builds.
        system::ensure_chromium()?;
        crate::web::build(false)?;
    }
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    system::run_tests_bin("bench", true, &names)
}
