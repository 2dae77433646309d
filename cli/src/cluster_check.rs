//! `faultline cluster check`: reaches every node of a cluster file over ssh and says, per
//! node, what a run would miss — ssh itself, `nft`, or a lifecycle command's program.

use std::process::ExitCode;
use std::time::Duration;

use faultline_targets::ssh::Ssh;
use faultline_targets::ssh::cluster_file::{ClusterFile, Node};
use futures_util::future::join_all;
use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::args::ClusterCheckArgs;
use crate::run::CANNOT_RUN;

/// How long one check on one node may take.
const CHECK_WITHIN: Duration = Duration::from_secs(15);

#[derive(Tabled)]
struct Row {
    node: String,
    host: String,
    ssh: String,
    nft: String,
    commands: String,
}

/// Runs `faultline cluster check`.
pub(crate) fn run(args: &ClusterCheckArgs) -> ExitCode {
    let file = match ClusterFile::read(&args.cluster) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("faultline: {e}");
            return ExitCode::from(2);
        }
    };
    let ssh = match Ssh::new(file.ssh.clone()) {
        Ok(ssh) => ssh,
        Err(e) => {
            eprintln!("faultline: cannot make a directory for ssh's control sockets: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    let rows =
        crate::run::runtime().block_on(join_all(file.nodes.iter().map(|n| check(&ssh, &file, n))));
    let good = rows.iter().all(|(_, ok)| *ok);
    println!(
        "{}",
        Table::new(rows.into_iter().map(|(row, _)| row)).with(Style::sharp())
    );
    if good {
        println!("every node is reachable and has what a run needs");
        ExitCode::SUCCESS
    } else {
        println!("fix what is marked, then check again");
        ExitCode::from(CANNOT_RUN)
    }
}

/// One node's row, and whether it has everything.
async fn check(ssh: &Ssh, file: &ClusterFile, node: &Node) -> (Row, bool) {
    let env = [
        ("FAULTLINE_NODE", node.name.as_str()),
        ("FAULTLINE_NODES", &file.names()),
    ];
    let mut row = Row {
        node: node.name.clone(),
        host: node.host.clone(),
        ssh: "ok".into(),
        nft: "—".into(),
        commands: "—".into(),
    };
    match ssh.run(&node.host, &env, "true", CHECK_WITHIN).await {
        Ok(ran) if ran.success => {}
        Ok(ran) => {
            let why = ran.stderr.lines().last().unwrap_or("").trim().to_string();
            row.ssh = format!("unreachable: {why}");
            return (row, false);
        }
        Err(e) => {
            row.ssh = format!("unreachable: {e}");
            return (row, false);
        }
    }
    let nft_missing = missing(ssh, node, &env, "nft").await;
    row.nft = if nft_missing {
        "missing (partitions and packet faults need nftables)".into()
    } else {
        "ok".into()
    };
    let mut absent = Vec::new();
    for (name, command) in file.commands.given() {
        if let Some(program) = program_of(command)
            && missing(ssh, node, &env, &program).await
        {
            absent.push(format!("{name}: `{program}` not found"));
        }
    }
    row.commands = if absent.is_empty() {
        let n = file.commands.given().len();
        if n == 0 {
            "none given".into()
        } else {
            format!("ok ({n})")
        }
    } else {
        absent.join("; ")
    };
    (row, !nft_missing && absent.is_empty())
}

/// Whether `program` is missing on `node`.
async fn missing(ssh: &Ssh, node: &Node, env: &[(&str, &str)], program: &str) -> bool {
    let script = format!("command -v {}", shell_words::quote(program));
    !matches!(ssh.run(&node.host, env, &script, CHECK_WITHIN).await, Ok(ran) if ran.success)
}

/// The program a shell command starts with (after any plain `NAME=value` assignments), when
/// that can be told without running a shell: `None` for a command that starts with a command
/// substitution or other shell syntax.
fn program_of(command: &str) -> Option<String> {
    let words = shell_words::split(command).ok()?;
    let assignment = |w: &str| {
        w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let substituted = (command.split_whitespace())
        .take_while(|w| assignment(w))
        .any(|w| w.contains("$(") || w.contains('`'));
    let first = words.into_iter().find(|w| !assignment(w))?;
    let plain = first
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./-+".contains(c));
    (plain && !first.starts_with('-') && !substituted).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_comes_after_the_assignments() {
        assert_eq!(
            program_of("systemctl start etcd").as_deref(),
            Some("systemctl")
        );
        assert_eq!(
            program_of("ETCD_NAME=$FAULTLINE_NODE etcd --data-dir /d").as_deref(),
            Some("etcd")
        );
        assert_eq!(program_of("'unterminated"), None);
        assert_eq!(program_of("IP=$(ip -4 addr) ; etcd --name x"), None);
        assert_eq!(program_of("setsid nohup etcd &").as_deref(), Some("setsid"));
        assert_eq!(program_of("pkill -f \"[e]tcd\"").as_deref(), Some("pkill"));
    }
}
