//! Compiles `proto/search/v1/search.proto` and seed 003's `proto/search/search.proto` with protox (pure Rust, no protoc) and generates the
//! tonic server and client, plus the encoded descriptor set for server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script compiled in one checkout may run for another that
    // shares the target directory, and `env!` would point it at the first.
    let root =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../../proto");
    let protos = [
        root.join("search/v1/search.proto"),
        root.join("search/search.proto"),
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    let fds = protox::compile(&protos, [&root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("search_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
