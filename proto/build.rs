//! Compiles every `.proto` under `proto/` with protox (pure Rust, no system `protoc`) and generates
//! the tonic clients and servers. The descriptor set is written next to the generated code so the hub
//! can serve reflection from it.

use std::path::PathBuf;

const PROTO_FILES: &[&str] = &[
    "solarhub/v1/hierarchy.proto",
    "solarhub/v1/catalog.proto",
    "solarhub/v1/ingest.proto",
    "solarhub/v1/live.proto",
    "solarhub/v1/history.proto",
    "solarhub/v1/server_info.proto",
    "solarhub/v1/quality.proto",
    "solarhub/v1/audit.proto",
    "solarhub/v1/control.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    let file_descriptor_set = protox::compile(PROTO_FILES, [&proto_root])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("solarhub_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&file_descriptor_set),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // No `connect(url)` helpers: they need tonic's transport, which the wire types leave to
        // the services (they build their channels themselves).
        .build_transport(false)
        // prost's codec with each message's buffer sized once (`src/codec.rs`).
        .codec_path("crate::codec::ProtoCodec")
        // The largest answer, encoded by the server as it reads its rows (`src/answers.rs`).
        .extern_path(
            ".solarhub.v1.EnergyHistory",
            "crate::answers::EnergyHistory",
        )
        .compile_fds(file_descriptor_set)?;
    Ok(())
}
