//! Generates the `Envelope` type from `proto/jobs/v1/envelope.proto` with a vendored
//! protoc, so building needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: env!() would bake in the path of whichever checkout built the script.
    let manifest_dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("../../proto");
    let envelope = proto_dir.join("jobs/v1/envelope.proto");
    println!("cargo:rerun-if-changed={}", envelope.display());
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.bytes([".jobs.v1.Envelope.payload"]);
    config.compile_protos(&[envelope], &[proto_dir])?;
    Ok(())
}
