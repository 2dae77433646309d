//! The `faultline` binary: parses the command line, runs the command, and turns its outcome
//! into an exit code (DESIGN §7):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | every verdict PASS |
//! | 1 | some verdict FAIL |
//! | 2 | bad usage (clap) |
//! | 3 | some verdict UNKNOWN and none FAIL |
//! | 4 | an input could not be read or judged (this wins over the verdicts) |

mod args;
mod check;
mod cluster;
mod cluster_check;
mod compare;
mod hunt;
mod judge;
mod network;
mod plan;
mod remote;
mod report;
mod run;
mod shrink;
mod sim;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match cli.command {
        args::Command::Run(run) => run::run(&run),
        args::Command::Compare(compare) => compare::compare(&compare),
        args::Command::Check(check) => check::run(&check),
        args::Command::Cluster(args::ClusterCommand::Up(up)) => cluster::up(&up),
        args::Command::Cluster(args::ClusterCommand::Check(check)) => cluster_check::run(&check),
        args::Command::Report(report) => report::run(&report),
        args::Command::Hunt(hunt) => hunt::run(&hunt),
        args::Command::Node(node) => cluster::node(&node),
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
