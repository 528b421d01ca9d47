//! `solarhub-collector`: not yet able to poll devices (see the collector issues).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "solarhub-collector",
    version,
    about = "The solarhub collector (device polling arrives with its issue)"
)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    eprintln!("error: the collector cannot poll devices yet; see the collector issue");
    std::process::ExitCode::FAILURE
}
