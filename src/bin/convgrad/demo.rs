pub fn run(_o: &convgrad::AdapterOptions, _a: &DemoArgs) -> Result<std::process::ExitCode, crate::CliError> { todo!() }
#[derive(Debug, clap::Args)] pub struct DemoArgs {}
