pub fn run(_o: &convgrad::AdapterOptions, _a: &BenchArgs) -> Result<std::process::ExitCode, crate::CliError> { todo!() }
#[derive(Debug, clap::Args)] pub struct BenchArgs {}
