//! The lab over ssh (`lab up --ssh`): every node runs OpenSSH's sshd in its
//! own namespaces, listening on the node's loopback, and the inventory
//! reaches each agent the way an operator reaches a real node: `ssh root@…
//! corodrill-agent --stdio`, with a throwaway key made for this lab. The
//! ssh client runs inside the node's network namespace, so no traffic
//! touches the host's.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{host, LabError};

pub const SSHD: &str = "/usr/sbin/sshd";

fn dir(lab_dir: &Path) -> PathBuf {
    lab_dir.join("ssh")
}

pub fn config_path(lab_dir: &Path) -> PathBuf {
    dir(lab_dir).join("sshd_config")
}

/// Keys (the client's and one host key all nodes share), authorized_keys,
/// known_hosts and sshd's configuration, all inside the lab's directory.
pub fn prepare(lab_dir: &Path) -> Result<(), LabError> {
    let d = dir(lab_dir);
    host::create_dir(&d)?;
    for key in ["id_ed25519", "host_ed25519"] {
        host::run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "corodrill-lab", "-f"])
                .arg(d.join(key)),
            &format!("making the lab's ssh key {key}"),
        )?;
    }
    let read = |name: &str| {
        std::fs::read_to_string(d.join(name))
            .map_err(|e| LabError::io(format!("reading {}", d.join(name).display()), e))
    };
    host::write_file(
        &d.join("authorized_keys"),
        read("id_ed25519.pub")?.as_bytes(),
    )?;
    let host_key: Vec<String> = read("host_ed25519.pub")?
        .split_whitespace()
        .take(2)
        .map(str::to_owned)
        .collect();
    host::write_file(
        &d.join("known_hosts"),
        format!("127.0.0.1 {}\n", host_key.join(" ")).as_bytes(),
    )?;
    let config = format!(
        "# sshd of every node of this corodrill lab (lab up --ssh)\n\
         ListenAddress 127.0.0.1\n\
         Port 22\n\
         HostKey {host_key}\n\
         AuthorizedKeysFile {authorized}\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         PidFile none\n\
         LogLevel ERROR\n",
        host_key = d.join("host_ed25519").display(),
        authorized = d.join("authorized_keys").display(),
    );
    host::write_file(&config_path(lab_dir), config.as_bytes())
}

/// The inventory's connect command for a node: ssh from inside the node's
/// network namespace to its sshd, running the node's own copy of the agent
/// (`corodrill install-agent` puts it there).
pub fn connect(lab_dir: &Path, netns: &str, node_dir: &Path) -> String {
    let d = dir(lab_dir);
    format!(
        "nsenter --net={netns_path} -- ssh -F none -i {key} -o UserKnownHostsFile={known} \
         -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=5 \
         root@127.0.0.1 {agent} --stdio --lab-node {node_dir}",
        netns_path = host::netns_path(netns).display(),
        key = d.join("id_ed25519").display(),
        known = d.join("known_hosts").display(),
        agent = agent_path(node_dir).display(),
        node_dir = node_dir.display(),
    )
}

/// Where each node keeps its copy of the agent, as a real node would in
/// its own filesystem.
pub fn agent_path(node_dir: &Path) -> PathBuf {
    node_dir.join("bin").join("corodrill-agent")
}

/// Whether something listens on the node's port 22 (`ss` inside the node).
pub fn listening(netns: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", netns, "ss", "-Htln", "sport = :22"])
        .output()
        .is_ok_and(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
}
