//! corodrill-agent: runs on each cluster node and is the only process that
//! touches it. It talks only over its stdin/stdout and opens no port.

mod corosync_log;
mod faults;
mod follow;
mod journal;
mod nft;
mod node;
mod owner;
mod pacemaker_alert;
mod preflight;
mod pve_ha;
mod quorum;
mod resource_view;
mod resources;
mod server;
mod stall;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "corodrill-agent",
    version,
    about = "corodrill's agent on a cluster node"
)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["stdio", "rollback", "guard"]))]
struct Cli {
    /// Serve the controller over stdin/stdout (JSON lines).
    #[arg(long)]
    stdio: bool,
    /// Roll back whatever the journal holds, print what was removed, exit.
    /// An agent that holds the node now (a drill running) is made to roll
    /// back first: this is the red button on the node itself.
    #[arg(long)]
    rollback: bool,
    /// Internal: the dead-man of the owning agent PID; rolls its journal
    /// back when it dies, unless a new agent has taken over.
    #[arg(long, value_name = "PID", hide = true)]
    guard: Option<i32>,
    /// This is a lab node whose files (corosync.conf, faketime) are in DIR.
    #[arg(long, value_name = "DIR")]
    lab_node: Option<PathBuf>,
    /// Where the journal lives (default /var/lib/corodrill-agent, or DIR/agent in the lab).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Pacemaker runs its alert agents with no arguments and the event in
    // CRM_alert_* variables: this binary is corodrill's.
    if pacemaker_alert::is_alert_call() {
        return ExitCode::from(pacemaker_alert::alert_main());
    }
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
    let node = node::Node::new(cli.lab_node.clone(), cli.state_dir)?;
    if let Some(pid) = cli.guard {
        return Ok(guard(node, pid, cli.lab_node));
    }
    let journal = journal::Journal::open(&node.state_dir).map_err(anyhow::Error::msg)?;
    let hostname = node.hostname();
    let owner = owner::own_after_guard(&node, std::time::Duration::from_secs(30))
        .map_err(anyhow::Error::msg)?;
    if cli.rollback {
        let lock = match owner {
            Some(lock) => lock,
            None => {
                eprintln!(
                    "corodrill-agent: another agent (pid {}) holds this node: making it roll back",
                    owner::owner_pid(&node.state_dir).map_or("unknown".into(), |p| p.to_string())
                );
                owner::take_over(&node, std::time::Duration::from_secs(10))
                    .map_err(anyhow::Error::msg)?
            }
        };
        // Rolled back here, in the foreground: no guard for a one-shot.
        let ctx = faults::Ctx::new(node);
        let mut agent = server::Agent::new(ctx, journal, Some(lock), None);
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
    let ctx = faults::Ctx::new(node);
    let agent = server::Agent::new(ctx, journal, None, cli.lab_node);
    Ok(server::serve(agent, hostname, owner) as u8)
}

/// The guard: waits for the owning agent to die, then rolls its journal
/// back unless another agent holds the node by then (a reconnecting
/// controller's new agent does that itself).
fn guard(node: node::Node, pid: i32, lab_node: Option<PathBuf>) -> u8 {
    // The signals that end an agent's session must not end its guard mid-rollback.
    let _ = server::stop_signals().thread_block();
    owner::wait_for_exit(pid);
    let Ok(Some(lock)) = owner::try_own(&node.state_dir) else {
        return 0;
    };
    let journal = match journal::Journal::open(&node.state_dir) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("corodrill-agent guard: {e}");
            return 3;
        }
    };
    if journal.entries.is_empty() {
        return 0;
    }
    let ctx = faults::Ctx::new(node);
    let mut agent = server::Agent::new(ctx, journal, Some(lock), lab_node);
    let reports = agent.recover();
    for r in &reports {
        eprintln!("corodrill-agent guard: agent {pid} died: {r}");
    }
    u8::from(!reports.iter().all(|r| r.clean))
}
