//! magnet-proto: the protobuf types and tonic services of magnetm3u8, generated from `proto/`.
//! Nothing else lives here: services convert these to their domain types at their edge.

#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("magnet.v1");
}
