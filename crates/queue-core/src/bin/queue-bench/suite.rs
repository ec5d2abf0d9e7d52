//! The benchmark suite (to be written).

#[derive(clap::Args, Debug)]
pub struct SuiteArgs {}

pub async fn run(_args: SuiteArgs) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
