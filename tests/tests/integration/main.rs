//! Cross-service integration tests, one binary (link once). Every test starts its own real
//! nats-server, librqbit seeder and services on ephemeral loopback ports.

mod accounts;
mod chaos;
mod choice;
mod controls;
mod disk;
mod downloader;
mod gateway;
mod hostile;
mod images;
mod local;
mod nats_cluster;
mod observability;
mod original_client;
mod original_worker;
mod progressive;
mod progressive_crash;
mod security;
mod seeding;
mod stack;
mod streamer;
mod torrent_files;
mod transcoder;
mod turn;
mod ui;
