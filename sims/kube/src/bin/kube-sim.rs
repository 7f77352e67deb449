//! Runs a simulated Kubernetes API server with a small home-and-cloud-like cluster, for trying
//! `kubectl` against it:
//!
//! ```sh
//! cargo run -p burst-kube-sim --bin kube-sim -- [TOKEN]
//! kubectl --server https://127.0.0.1:PORT --certificate-authority sim-ca.pem --token TOKEN get nodes
//! ```
//!
//! Stops on Ctrl-C.

use burst_kube_sim::{self as sim, SimOptions, SimWorkload};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let token = std::env::args().nth(1);
    // kubectl sends a token only over TLS: with a token, serve https and write the CA out.
    let tls = token.is_some();
    let sim = sim::start(SimOptions {
        token,
        tls,
        ..SimOptions::default()
    })
    .await?;
    if let Some(ca) = sim.ca_pem() {
        std::fs::write("sim-ca.pem", ca)?;
        eprintln!("CA written to sim-ca.pem");
    }
    sim.set_nodes(&[
        ("cp-1", true),
        ("cp-2", true),
        ("cp-3", true),
        ("w-1", true),
        ("w-2", false),
    ]);
    sim.add_example_workloads();
    sim.add_deployment(SimWorkload::new("tools", "batch").replicas(1));
    println!("{}", sim.base_url());
    tokio::signal::ctrl_c().await?;
    for r in sim.requests() {
        println!("{} {} {:?} -> {}", r.method, r.path, r.query, r.status);
    }
    sim.shutdown().await;
    Ok(())
}
