//! Generates the tonic/prost code with a vendored protoc, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "magnet/v1/tasks.proto",
        "magnet/v1/nodes.proto",
        "magnet/v1/files.proto",
        "magnet/v1/signaling.proto",
        "magnet/v1/hls.proto",
        "magnet/v1/originals.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(config, &protos, &["."])?;
    Ok(())
}
