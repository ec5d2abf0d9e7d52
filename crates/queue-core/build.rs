//! Generates the `Envelope` type from `proto/jobs/v1/envelope.proto` with a vendored
//! protoc, so building needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let envelope = proto_dir.join("jobs/v1/envelope.proto");
    println!("cargo:rerun-if-changed={}", envelope.display());
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.bytes([".jobs.v1.Envelope.payload"]);
    config.compile_protos(&[envelope], &[proto_dir])?;
    Ok(())
}
