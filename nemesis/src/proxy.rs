//! The `proxy` backend for URL targets: faultline's own TCP proxies between the runner and
//! each node, so packet faults (delay, jitter, loss as a retransmission stall) reach any
//! server without root, netem or the server's help. The runner talks to [`ProxyBackend::urls`]
//! instead of the nodes.

use std::net::SocketAddr;

use faultline_targets::proxy::{Proxy, Toxics};

use crate::Backend;
use crate::fault::{Fault, Kind};

/// Proxies in front of a URL target's nodes.
pub struct ProxyBackend {
    proxies: Vec<Proxy>,
    scheme: String,
}

impl ProxyBackend {
    /// Starts a loopback proxy in front of each of `urls` (`scheme://host:port`).
    pub async fn start(urls: &[String]) -> Result<ProxyBackend, String> {
        let mut proxies = Vec::with_capacity(urls.len());
        let mut scheme = String::from("http");
        for url in urls {
            let (s, host_port) = url
                .split_once("://")
                .ok_or_else(|| format!("`{url}` has no scheme"))?;
            scheme = s.to_string();
            let host_port = host_port.trim_end_matches('/');
            let upstream: SocketAddr = tokio::net::lookup_host(host_port)
                .await
                .map_err(|e| format!("cannot resolve {host_port}: {e}"))?
                .next()
                .ok_or_else(|| format!("{host_port} resolves to no address"))?;
            let proxy = Proxy::start("127.0.0.1:0".parse().expect("an address"), upstream)
                .await
                .map_err(|e| format!("cannot start a proxy for {url}: {e}"))?;
            proxies.push(proxy);
        }
        Ok(ProxyBackend { proxies, scheme })
    }

    /// The proxies' URLs, one per node in order: what the runner should talk to.
    pub fn urls(&self) -> Vec<String> {
        self.proxies
            .iter()
            .map(|p| format!("{}://{}", self.scheme, p.addr()))
            .collect()
    }
}

impl ProxyBackend {
    /// The kinds proxies cannot apply, each with the reason.
    pub fn unsupported_kinds(kinds: &[Kind]) -> Vec<(Kind, String)> {
        kinds
            .iter()
            .filter(|&&k| k != Kind::Packet)
            .map(|&k| {
                if k == Kind::Crash {
                    return (k, crate::CRASH_NEEDS_BUNDLED.to_string());
                }
                (
                    k,
                    "a URL target's proxies can only delay and lose packets; give a command for \
                     it with --nemesis-cmd"
                        .to_string(),
                )
            })
            .collect()
    }
}

impl Backend for ProxyBackend {
    fn unsupported(&self, kinds: &[Kind]) -> Vec<(Kind, String)> {
        ProxyBackend::unsupported_kinds(kinds)
    }

    async fn apply(&mut self, fault: &Fault) -> Result<Fault, String> {
        let Fault::Packet {
            nodes,
            delay_ms,
            jitter_ms,
            loss,
            ..
        } = fault
        else {
            return Err(format!("proxies cannot apply a {} fault", fault.kind()));
        };
        for &i in nodes {
            self.proxies[i as usize].set(Toxics {
                delay_ms: *delay_ms,
                jitter_ms: *jitter_ms,
                loss: *loss,
                ..Toxics::default()
            });
        }
        Ok(Fault::Packet {
            nodes: nodes.clone(),
            delay_ms: *delay_ms,
            jitter_ms: *jitter_ms,
            loss: *loss,
            duplicate: 0.0,
        })
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), String> {
        if let Fault::Packet { nodes, .. } = fault {
            for &i in nodes {
                self.proxies[i as usize].set(Toxics::default());
            }
        }
        Ok(())
    }

    async fn heal_all(&mut self) -> Result<(), String> {
        for proxy in &self.proxies {
            proxy.set(Toxics::default());
        }
        Ok(())
    }
}
