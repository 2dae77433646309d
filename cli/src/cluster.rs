//! `faultline cluster up` and the hidden `faultline node`: wiring between the command line and
//! the targets crate's cluster and runtime.

use std::process::ExitCode;

use faultline_targets::cluster::{Cluster, ClusterSpec, check_spec};
use faultline_targets::etcd::{EtcdCluster, EtcdSettings, EtcdSpec};
use faultline_targets::runtime::{NodeConfig, run_system};
use faultline_targets::systems::SystemSettings;
use faultline_targets::systems::kv::node_name;
use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::args::{ClusterUpArgs, NodeArgs};

use crate::run::runtime;

#[derive(Tabled)]
struct NodeRow {
    node: String,
    url: String,
    pid: String,
}

/// Runs `faultline cluster up`.
pub(crate) fn up(args: &ClusterUpArgs) -> ExitCode {
    if args.system == "etcd" {
        return up_etcd(args);
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("faultline: cannot find my own executable to start nodes: {e}");
            return ExitCode::from(4);
        }
    };
    let spec = ClusterSpec {
        system: args.system.clone(),
        // The saga system is always an orchestrator and three services.
        nodes: if ["saga", "twopc"].contains(&args.system.as_str()) {
            4
        } else {
            args.nodes
        },
        settings: args.settings.clone(),
        data_dir: args.data_dir.clone(),
        exe,
        seed: args.seed,
    };
    if let Err(e) = check_spec(&spec) {
        eprintln!("faultline: {e}");
        return ExitCode::from(2);
    }
    runtime().block_on(async {
        let started = std::time::Instant::now();
        let cluster = match Cluster::start(spec).await {
            Ok(cluster) => cluster,
            Err(e) => {
                eprintln!("faultline: the cluster did not start: {e}");
                return ExitCode::from(4);
            }
        };
        print_cluster(&cluster, started.elapsed());
        let code = wait_for_stop().await;
        eprintln!("faultline: stopping {} nodes", cluster.nodes().len());
        drop(cluster);
        code
    })
}

/// Runs `faultline cluster up --system etcd`: real etcd members, until Ctrl-C or SIGTERM.
fn up_etcd(args: &ClusterUpArgs) -> ExitCode {
    let settings =
        match EtcdSettings::default().apply(args.settings.iter().map(String::as_str), true) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("faultline: --system etcd: {e}");
                return ExitCode::from(2);
            }
        };
    let spec = EtcdSpec {
        nodes: args.nodes,
        bin: args.etcd_bin.clone(),
        data_dir: args.data_dir.clone(),
        settings,
    };
    runtime().block_on(async {
        let cluster = match EtcdCluster::start(spec).await {
            Ok(cluster) => cluster,
            Err(e) => {
                eprintln!("faultline: the etcd cluster did not start: {e}");
                return ExitCode::from(4);
            }
        };
        let direct = cluster.direct_urls();
        let rows = (0..cluster.len()).map(|i| NodeRow {
            node: node_name(i as u32),
            url: direct[i].clone(),
            pid: cluster.pid(i).map_or("-".into(), |p| p.to_string()),
        });
        println!(
            "etcd cluster of {} members ready in {} ms ({})",
            cluster.len(),
            cluster.started_in().as_millis(),
            match cluster.namespaces() {
                Some(ns) => format!(
                    "each in its own network namespace, {}",
                    ns.netns(0).replace("-n0", "-n*")
                ),
                None => "on loopback".to_string(),
            }
        );
        println!("{}", Table::new(rows).with(Style::sharp()));
        println!("data and member logs: {}", cluster.data_dir().display());
        let url = &direct[0];
        println!("try:");
        println!("  curl -X POST {url}/v3/kv/put -d '{{\"key\": \"Zm9v\", \"value\": \"YmFy\"}}'");
        println!("  curl -X POST {url}/v3/kv/range -d '{{\"key\": \"Zm9v\"}}'");
        println!(
            "  faultline run --target etcd://{} --nemesis none",
            direct
                .iter()
                .map(|u| u.trim_start_matches("http://"))
                .collect::<Vec<_>>()
                .join(",")
        );
        println!("Ctrl-C stops the cluster.");
        let code = wait_for_stop().await;
        eprintln!("faultline: stopping {} etcd members", cluster.len());
        drop(cluster);
        code
    })
}

fn print_cluster(cluster: &Cluster, took: std::time::Duration) {
    let rows = cluster.nodes().iter().map(|n| NodeRow {
        node: n.name.clone(),
        url: n.url.clone(),
        pid: n.pid().map_or("-".into(), |p| p.to_string()),
    });
    println!(
        "{} cluster of {} nodes healthy in {} ms: {}",
        cluster.system(),
        cluster.nodes().len(),
        took.as_millis(),
        cluster.settings()
    );
    println!("{}", Table::new(rows).with(Style::sharp()));
    let url = &cluster.nodes()[0].url;
    println!("data and node logs: {}", cluster.data_dir().display());
    println!("try:");
    if ["saga", "twopc"].contains(&cluster.system()) {
        println!(
            "  curl -X POST {url}/orders -H 'Idempotency-Key: k1' -d '{{\"order\": \"o1\", \"sku\": \"sku-1\", \"qty\": 2, \"account\": \"acct-1\", \"amount\": 30}}'"
        );
        println!("  curl {url}/orders/o1");
        println!("  curl {}/state", cluster.nodes()[2].url);
    } else {
        println!("  curl -X PUT {url}/kv/greeting -d '{{\"value\": \"hello\"}}'");
        println!("  curl {url}/kv/greeting");
        println!("  curl {url}/admin/state");
    }
    println!("Ctrl-C stops the cluster.");
}

/// Waits for Ctrl-C (exit 130) or SIGTERM (exit 0).
async fn wait_for_stop() -> ExitCode {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM can be watched");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => ExitCode::from(130),
        _ = term.recv() => ExitCode::SUCCESS,
    }
}

/// Runs the hidden `faultline node`.
pub(crate) fn node(args: &NodeArgs) -> ExitCode {
    if args.exit_with_parent {
        // The cluster that started us may be SIGKILLed: never outlive it.
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
        if nix::unistd::getppid() == nix::unistd::Pid::from_raw(1) {
            return ExitCode::from(4);
        }
    }
    let settings = match SystemSettings::parse(
        &args.system,
        args.peers.len() as u32,
        args.settings.iter().map(String::as_str),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("faultline node: {e}");
            return ExitCode::from(2);
        }
    };
    if args.id as usize >= args.peers.len() {
        eprintln!(
            "faultline node: --id {} but only {} peers",
            args.id,
            args.peers.len()
        );
        return ExitCode::from(2);
    }
    let config = NodeConfig {
        id: args.id,
        http: args.http,
        peers: args.peers.clone(),
        data_dir: args.data_dir.clone(),
        seed: args.seed,
    };
    match runtime().block_on(run_system(config, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faultline node: {e}");
            ExitCode::from(4)
        }
    }
}
