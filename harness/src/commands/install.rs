//! `corodrill install-agent`: the agent binary onto every node, each
//! checked.

use std::path::Path;
use std::time::Duration;

use super::inventory_or_report;

/// `corodrill install-agent`: the agent binary onto every node, each
/// checked; exit 0 when every node has it, 2 for bad input, 3 otherwise.
pub fn install_agent(inventory_path: &Path, agent: Option<&Path>) -> u8 {
    let inventory = match inventory_or_report(inventory_path) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let Some(binary) = agent
        .map(Path::to_path_buf)
        .or_else(crate::cluster::agent::bundled_agent)
    else {
        eprintln!(
            "no corodrill-agent beside corodrill: say which binary to install with --agent PATH"
        );
        return 2;
    };
    if !binary.is_file() {
        eprintln!("--agent {}: no such file", binary.display());
        return 2;
    }
    let mut code = 0;
    for result in crate::cluster::install::install_all(&inventory, &binary, Duration::from_secs(60))
    {
        match result {
            Ok(i) => println!(
                "{}: {} installed at {} ({:.1}s), answering",
                i.node,
                i.version,
                i.path,
                i.took.as_secs_f64()
            ),
            Err(e) => {
                eprintln!("{e}");
                code = 3;
            }
        }
    }
    code
}
