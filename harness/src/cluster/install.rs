//! `corodrill install-agent`: copies the agent binary to every node over
//! the node's own `connect` command (ssh on real clusters), then checks the
//! version it reports and that it says hello. No new port, no new secret:
//! whatever reaches the agent installs it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::agent::{AgentConn, AGENT};
use crate::inventory::{Inventory, InventoryNode};

/// Where an agent named without a path in `connect` is installed: on
/// Debian's default PATH, for root and for sudo's secure_path alike.
pub const DEFAULT_AGENT_PATH: &str = "/usr/local/bin/corodrill-agent";

/// A node's `connect` split around its agent invocation, so that other
/// commands can take the agent's place on the same path (through the same
/// ssh, sudo, quoting): `prefix + command + suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPath {
    prefix: String,
    suffix: String,
    /// Where the agent lives on the node.
    pub agent: String,
}

impl CommandPath {
    /// Finds the first word whose last path component is `corodrill-agent`,
    /// in the command or in a command quoted inside it for a remote shell
    /// (`ssh host 'sudo corodrill-agent --stdio'`). shlex reads the words;
    /// the text around the invocation is kept as written, because words
    /// joined again would lose what only a shell reads (`~`, `2>/dev/null`).
    /// The invocation runs to the end of the command, or of the quoted
    /// command it is in. None when no word names the agent, or the quotes
    /// do not close.
    pub fn parse(connect: &str) -> Option<CommandPath> {
        let is_agent = |w: &str| w.rsplit('/').next() == Some(AGENT);
        let (word, nested) = shlex::split(connect)?.into_iter().find_map(|w| {
            if is_agent(&w) {
                return Some((w, false));
            }
            // A word with a space in it was quoted: a command of its own.
            let inner = shlex::split(&w).filter(|words| words.len() > 1)?;
            inner.into_iter().find(|x| is_agent(x)).map(|x| (x, true))
        })?;
        // Where the word is written: its first occurrence standing alone.
        // match_indices and the quote searches give char boundaries, so
        // any whitespace (U+00A0, U+2003) slices cleanly.
        let is_break = |c: char| matches!(c, ' ' | '\t' | '\n' | '\'' | '"');
        let start = connect
            .match_indices(word.as_str())
            .map(|(i, _)| i)
            .find(|&i| {
                connect[..i].chars().next_back().is_none_or(is_break)
                    && connect[i + word.len()..]
                        .chars()
                        .next()
                        .is_none_or(is_break)
            })?;
        let after = start + word.len();
        let (start, end) = if nested {
            // To the quote that closes the one the command opened with.
            let open = connect[..start].rfind(['\'', '"'])?;
            let quote = &connect[open..=open];
            let end = connect[after..]
                .find(quote)
                .map_or(connect.len(), |i| after + i);
            (start, end)
        } else if connect[..start].ends_with(['\'', '"']) {
            // The agent's own name quoted (`"corodrill-agent" --stdio`):
            // its opening quote goes with it.
            (start - 1, connect.len())
        } else {
            (start, connect.len())
        };
        let agent = if word.contains('/') {
            word
        } else {
            DEFAULT_AGENT_PATH.to_owned()
        };
        Some(CommandPath {
            prefix: connect[..start].to_owned(),
            suffix: connect[end..].to_owned(),
            agent,
        })
    }

    /// `connect` with `command` (plain words, no quotes) in the agent's place.
    pub fn with(&self, command: &str) -> String {
        format!("{}{command}{}", self.prefix, self.suffix)
    }

    /// The commands that install `size` bytes read from stdin: written
    /// beside the agent, then renamed over it, so that a running agent keeps
    /// its binary and no node is ever left with half a one.
    pub fn install_steps(&self) -> [String; 4] {
        let new = format!("{}.new", self.agent);
        let dir = Path::new(&self.agent)
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "/".into());
        [
            self.with(&format!("mkdir -p {dir}")),
            self.with(&format!("dd of={new} bs=1M status=none")),
            self.with(&format!("chmod 0755 {new}")),
            self.with(&format!("mv -f {new} {}", self.agent)),
        ]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("node {node}: its connect command {connect:?} names no corodrill-agent to install")]
    NoAgentInConnect { node: String, connect: String },
    #[error("node {node}: {step}: {message}")]
    Step {
        node: String,
        step: String,
        message: String,
    },
    #[error("node {node}: the installed agent reports {found:?}, expected {expected:?}")]
    Version {
        node: String,
        found: String,
        expected: String,
    },
}

/// What was installed on one node.
#[derive(Debug)]
pub struct Installed {
    pub node: String,
    pub path: String,
    pub version: String,
    pub took: Duration,
}

/// The version line this controller expects every agent to print.
pub fn expected_version() -> String {
    format!("{AGENT} {}", env!("CARGO_PKG_VERSION"))
}

/// Installs `binary` on every node at once; one result per node.
pub fn install_all(
    inventory: &Inventory,
    binary: &Path,
    timeout: Duration,
) -> Vec<Result<Installed, InstallError>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = inventory
            .nodes
            .iter()
            .map(|n| s.spawn(move || install(n, binary, timeout)))
            .collect();
        handles
            .into_iter()
            .zip(&inventory.nodes)
            .map(|(h, n)| {
                h.join().unwrap_or_else(|_| {
                    Err(InstallError::Step {
                        node: n.name.clone(),
                        step: "install".into(),
                        message: "the install thread panicked".into(),
                    })
                })
            })
            .collect()
    })
}

/// Copies the agent to one node, checks `--version`, then that the agent
/// answers on the node's connect command with the protocol we speak.
pub fn install(
    node: &InventoryNode,
    binary: &Path,
    timeout: Duration,
) -> Result<Installed, InstallError> {
    let started = Instant::now();
    let path = CommandPath::parse(&node.connect).ok_or_else(|| InstallError::NoAgentInConnect {
        node: node.name.clone(),
        connect: node.connect.clone(),
    })?;
    let step_error = |step: &str, message: String| InstallError::Step {
        node: node.name.clone(),
        step: step.to_owned(),
        message,
    };
    let bytes = std::fs::read(binary)
        .map_err(|e| step_error("reading the agent", format!("{}: {e}", binary.display())))?;
    let steps = path.install_steps();
    for (i, step) in steps.iter().enumerate() {
        let input = (i == 1).then_some(bytes.as_slice());
        shell(step, input, timeout).map_err(|m| step_error(step, m))?;
    }
    let check = path.with(&format!("{} --version", path.agent));
    let version = shell(&check, None, timeout)
        .map_err(|m| step_error(&check, m))?
        .trim()
        .to_owned();
    if version != expected_version() {
        return Err(InstallError::Version {
            node: node.name.clone(),
            found: version,
            expected: expected_version(),
        });
    }
    let agent = AgentConn::connect(&node.name, &node.connect, timeout)
        .map_err(|e| step_error("connecting to the installed agent", e.to_string()))?;
    drop(agent);
    Ok(Installed {
        node: node.name.clone(),
        path: path.agent,
        version,
        took: started.elapsed(),
    })
}

/// Runs one command with `sh -c`, feeding it `input`.
fn shell(command: &str, input: Option<&[u8]>, timeout: Duration) -> Result<String, String> {
    crate::cluster::tool::run(Command::new("sh").args(["-c", command]), input, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_invocation_is_found_in_every_connect_shape() {
        let ssh = CommandPath::parse("ssh root@10.0.0.10 corodrill-agent --stdio").unwrap();
        assert_eq!(ssh.agent, DEFAULT_AGENT_PATH);
        assert_eq!(
            ssh.with("chmod 0755 /x"),
            "ssh root@10.0.0.10 chmod 0755 /x"
        );
        let vagrant =
            CommandPath::parse("vagrant ssh node1 -c 'sudo corodrill-agent --stdio'").unwrap();
        assert_eq!(
            vagrant.install_steps()[1],
            "vagrant ssh node1 -c 'sudo dd of=/usr/local/bin/corodrill-agent.new bs=1M status=none'"
        );
        // The Vagrantfile's inventory: plain ssh with its ssh_config.
        let vagrant = CommandPath::parse(
            "ssh -F /p/.vagrant/corodrill/ssh/pve1 -T pve1 sudo corodrill-agent --stdio",
        )
        .unwrap();
        assert_eq!(
            vagrant.install_steps()[1],
            "ssh -F /p/.vagrant/corodrill/ssh/pve1 -T pve1 sudo dd of=/usr/local/bin/corodrill-agent.new bs=1M status=none"
        );
        let lab = CommandPath::parse(
            "nsenter --net=/run/netns/l-pve1 -- ssh -i /k root@127.0.0.1 /var/lib/corodrill/labs/l/pve1/bin/corodrill-agent --stdio --lab-node /var/lib/corodrill/labs/l/pve1",
        )
        .unwrap();
        assert_eq!(
            lab.agent,
            "/var/lib/corodrill/labs/l/pve1/bin/corodrill-agent"
        );
        assert_eq!(
            lab.install_steps(),
            [
                "nsenter --net=/run/netns/l-pve1 -- ssh -i /k root@127.0.0.1 mkdir -p /var/lib/corodrill/labs/l/pve1/bin",
                "nsenter --net=/run/netns/l-pve1 -- ssh -i /k root@127.0.0.1 dd of=/var/lib/corodrill/labs/l/pve1/bin/corodrill-agent.new bs=1M status=none",
                "nsenter --net=/run/netns/l-pve1 -- ssh -i /k root@127.0.0.1 chmod 0755 /var/lib/corodrill/labs/l/pve1/bin/corodrill-agent.new",
                "nsenter --net=/run/netns/l-pve1 -- ssh -i /k root@127.0.0.1 mv -f /var/lib/corodrill/labs/l/pve1/bin/corodrill-agent.new /var/lib/corodrill/labs/l/pve1/bin/corodrill-agent",
            ]
        );
        assert_eq!(
            CommandPath::parse("ssh pve1 \"/opt/corodrill-agent --stdio\" 2>/dev/null")
                .unwrap()
                .with("/opt/corodrill-agent --version"),
            "ssh pve1 \"/opt/corodrill-agent --version\" 2>/dev/null"
        );
        assert!(CommandPath::parse("ssh pve1 my-agent --stdio").is_none());
        // Top level, the invocation runs to the end, quotes and all.
        assert_eq!(
            CommandPath::parse("ssh pve1 corodrill-agent --stdio --lab-node '/a b'")
                .unwrap()
                .with("true"),
            "ssh pve1 true"
        );
        assert_eq!(
            CommandPath::parse("ssh -i ~/.ssh/k pve1 \"corodrill-agent\" --stdio")
                .unwrap()
                .with("true"),
            "ssh -i ~/.ssh/k pve1 true"
        );
        assert!(CommandPath::parse("ssh pve1 'corodrill-agent --stdio").is_none());
        assert!(CommandPath::parse("ssh pve1 corodrill-agent-old --stdio").is_none());
    }

    /// Unicode whitespace is one or more bytes: the hand splitter counted
    /// one per separator and sliced inside a character (a panic).
    #[test]
    fn unicode_whitespace_in_connect_never_slices_a_character() {
        let connect = "ssh\u{a0}pve1\u{2003}x corodrill-agent --stdio";
        let path = CommandPath::parse(connect).unwrap();
        assert_eq!(path.with("true"), "ssh\u{a0}pve1\u{2003}x true");
        let nested = "ssh\u{2003}pve1 'sudo\u{a0}x corodrill-agent --stdio'\u{a0}";
        let path = CommandPath::parse(nested).unwrap();
        assert_eq!(
            path.with("true"),
            "ssh\u{2003}pve1 'sudo\u{a0}x true'\u{a0}"
        );
        // Whitespace a shell does not split on is part of the word.
        assert!(CommandPath::parse("ssh pve1 corodrill-agent\u{a0}--stdio").is_none());
    }
}
