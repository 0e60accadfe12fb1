//! corodrill-agent: runs on each cluster node and is the only process that
//! touches it. This is the skeleton the lab's inventory points at; faults,
//! leases, the journal and the quorum stream come with the agent issue.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("-V") => {
            println!("corodrill-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--stdio") => {
            let hello = corodrill_protocol::Hello::new(env!("CARGO_PKG_VERSION"));
            eprintln!(
                "corodrill-agent {} (protocol {}): the --stdio agent is not built yet",
                hello.agent_version, hello.protocol_version
            );
            ExitCode::from(3)
        }
        _ => {
            eprintln!("usage: corodrill-agent --stdio | --version");
            ExitCode::from(2)
        }
    }
}
