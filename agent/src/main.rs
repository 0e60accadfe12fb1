//! corodrill-agent: runs on each cluster node and is the only process that
//! touches it. It talks only over its stdin/stdout and opens no port.

mod faults;
mod journal;
mod nft;
mod node;
mod preflight;
mod pve_ha;
mod quorum;
mod resources;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "corodrill-agent",
    version,
    about = "corodrill's agent on a cluster node"
)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["stdio", "rollback"]))]
struct Cli {
    /// Serve the controller over stdin/stdout (JSON lines).
    #[arg(long)]
    stdio: bool,
    /// Roll back whatever the journal holds, print what was removed, exit.
    #[arg(long)]
    rollback: bool,
    /// This is a lab node whose files (corosync.conf, faketime) are in DIR.
    #[arg(long, value_name = "DIR")]
    lab_node: Option<PathBuf>,
    /// Where the journal lives (default /var/lib/corodrill-agent, or DIR/agent in the lab).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Signals are taken by a thread of the server (sigwait): block them in
    // every thread before any is spawned.
    if cli.stdio {
        let _ = server::stop_signals().thread_block();
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("corodrill-agent: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let node = node::Node::new(cli.lab_node, cli.state_dir)?;
    let journal = journal::Journal::open(&node.state_dir).map_err(anyhow::Error::msg)?;
    let hostname = node.hostname();
    let ctx = faults::Ctx::new(node);
    let mut agent = server::Agent::new(ctx, journal);
    if cli.rollback {
        let reports = agent.recover();
        if reports.is_empty() {
            println!("nothing to roll back");
        }
        for r in &reports {
            println!("{r}");
        }
        return Ok(if reports.iter().all(|r| r.clean) {
            0
        } else {
            1
        });
    }
    let node_id = quorum::own_node_id();
    Ok(server::serve(agent, hostname, node_id) as u8)
}
