//! Compiles `switchboard/**/*.proto` with protox (pure Rust, no `protoc`) and
//! generates prost messages plus tonic clients and servers.

use std::{env, path::PathBuf};

use prost::Message as _;

const PROTOS: &[&str] = &[
    "switchboard/v1/switchboard.proto",
    "switchboard/v1/topics.proto",
    "switchboard/v1/admin.proto",
    "switchboard/internal/v1/bus.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // Kept for gRPC reflection.
    std::fs::write(out.join("switchboard_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::codec::SlimCodec")
        .compile_fds(fds)?;
    Ok(())
}
