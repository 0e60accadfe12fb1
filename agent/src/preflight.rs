//! Read-only checks on this node before clustering or drilling: the other
//! nodes' names resolve to the addresses corosync uses, the clock is
//! synchronised, every corosync link is connected, round trips are short,
//! and no firewall rule drops corosync's traffic. Nothing here changes the
//! node.

use std::net::IpAddr;

use corodrill_protocol::{Check, CheckStatus, Peer};

use crate::node::{command, run_output, run_output_within};

fn check(name: &str, status: CheckStatus, detail: String, fix: Option<&str>) -> Check {
    Check {
        name: name.into(),
        status,
        detail,
        fix: fix.map(str::to_owned),
    }
}

pub fn run(peers: &[Peer]) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.extend(peers.iter().map(name_resolution));
    checks.push(time_sync());
    checks.push(corosync_links());
    for p in peers {
        for (link, addr) in p.addresses.iter().enumerate() {
            checks.push(round_trip(&p.name, link, *addr));
        }
    }
    checks.push(firewall());
    checks
}

/// The name corosync's nodelist uses must resolve to the node's ring0 address.
fn name_resolution(peer: &Peer) -> Check {
    let Some(want) = peer.addresses.first() else {
        return check(
            "name resolution",
            CheckStatus::Warn,
            format!("{} has no address in the inventory", peer.name),
            None,
        );
    };
    let out = run_output(command("getent").args(["hosts", &peer.name])).unwrap_or_default();
    let got: Vec<IpAddr> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    if got.contains(want) {
        check(
            "name resolution",
            CheckStatus::Pass,
            format!("{} resolves to {want}", peer.name),
            None,
        )
    } else {
        check(
            "name resolution",
            CheckStatus::Fail,
            match got.first() {
                Some(a) => format!("{} resolves to {a}, corosync uses {want}", peer.name),
                None => format!("{} does not resolve", peer.name),
            },
            Some(&format!(
                "add \"{want} {}\" to /etc/hosts on every node",
                peer.name
            )),
        )
    }
}

fn time_sync() -> Check {
    if let Ok(out) = run_output(command("chronyc").args(["-n", "tracking"])) {
        let normal = out
            .lines()
            .any(|l| l.starts_with("Leap status") && l.contains("Normal"));
        let offset = out
            .lines()
            .find(|l| l.starts_with("System time"))
            .unwrap_or("")
            .trim()
            .to_owned();
        return if normal {
            check(
                "clock synchronised",
                CheckStatus::Pass,
                format!("chrony: {offset}"),
                None,
            )
        } else {
            check(
                "clock synchronised",
                CheckStatus::Fail,
                "chrony is not synchronised".into(),
                Some("check chrony's sources: chronyc sources -v"),
            )
        };
    }
    match run_output(command("timedatectl").args(["show", "-p", "NTPSynchronized", "--value"])) {
        Ok(v) if v.trim() == "yes" => check(
            "clock synchronised",
            CheckStatus::Pass,
            "timedatectl: NTP synchronised".into(),
            None,
        ),
        Ok(_) => check(
            "clock synchronised",
            CheckStatus::Fail,
            "timedatectl: not synchronised".into(),
            Some("enable time synchronisation (apt-get install chrony)"),
        ),
        Err(_) => check(
            "clock synchronised",
            CheckStatus::Warn,
            "no chrony and no timedatectl: cannot tell whether the clock is synchronised".into(),
            Some("install chrony (apt-get install chrony)"),
        ),
    }
}

/// `corosync-cfgtool -s`: every peer connected on every link.
fn corosync_links() -> Check {
    let Ok(out) = run_output_within(
        command("corosync-cfgtool").arg("-s"),
        std::time::Duration::from_secs(3),
    ) else {
        return check(
            "corosync links",
            CheckStatus::Fail,
            "corosync-cfgtool -s: corosync does not answer".into(),
            Some("start corosync"),
        );
    };
    let mut link = String::new();
    let mut down = Vec::new();
    let mut up = 0;
    for line in out.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("LINK ID ") {
            link = rest.split_whitespace().next().unwrap_or("?").to_owned();
        } else if let Some((id, state)) = l.strip_prefix("nodeid:").and_then(|r| r.split_once(':'))
        {
            match state.trim() {
                "localhost" => {}
                "connected" => up += 1,
                other => down.push(format!("link {link} to node {}: {other}", id.trim())),
            }
        }
    }
    if down.is_empty() {
        check(
            "corosync links",
            CheckStatus::Pass,
            format!("{up} peer link(s) connected"),
            None,
        )
    } else {
        check(
            "corosync links",
            CheckStatus::Fail,
            down.join("; "),
            Some("check the network of those links (cabling, VLAN, MTU, firewall)"),
        )
    }
}

fn round_trip(peer: &str, link: usize, addr: IpAddr) -> Check {
    let name = "round trip under 2 ms";
    let out = run_output(command("ping").args([
        "-q",
        "-n",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        &addr.to_string(),
    ]));
    let avg = out.ok().and_then(|o| {
        o.lines().find_map(|l| {
            l.split_once(" = ")?
                .1
                .split('/')
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
    });
    match avg {
        Some(ms) if ms < 2.0 => check(
            name,
            CheckStatus::Pass,
            format!("{peer} ring{link} {addr}: {ms:.3} ms"),
            None,
        ),
        Some(ms) => check(
            name,
            CheckStatus::Warn,
            format!("{peer} ring{link} {addr}: {ms:.3} ms"),
            Some("corosync wants a low-latency link: move this link to a dedicated, local network"),
        ),
        None => check(
            name,
            CheckStatus::Fail,
            format!("{peer} ring{link} {addr}: no answer to ping"),
            Some("check the route and that ICMP echo is allowed between the nodes"),
        ),
    }
}

/// A rule of someone else's that drops or rejects corosync's UDP ports.
fn firewall() -> Check {
    let mut found = Vec::new();
    if let Ok(ruleset) = run_output(command("nft").args(["list", "ruleset"])) {
        let mut ours = false;
        for line in ruleset.lines() {
            if line.starts_with("table ") {
                ours = line.contains(" corodrill");
            }
            if !ours && blocks_corosync(line) {
                found.push(format!("nft: {}", line.trim()));
            }
        }
    }
    for tool in ["iptables-legacy-save", "iptables-save"] {
        if let Ok(rules) = run_output(&mut command(tool)) {
            found.extend(
                rules
                    .lines()
                    .filter(|l| blocks_corosync(l) && !l.contains("CORODRILL"))
                    .map(|l| format!("{tool}: {l}")),
            );
        }
    }
    found.dedup();
    if found.is_empty() {
        check(
            "firewall lets corosync through",
            CheckStatus::Pass,
            "no rule drops UDP 5405-5412".into(),
            None,
        )
    } else {
        check(
            "firewall lets corosync through",
            CheckStatus::Fail,
            found.join("; "),
            Some("allow UDP 5405-5412 between the cluster nodes"),
        )
    }
}

fn blocks_corosync(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    let drops = l.contains("drop") || l.contains("reject");
    let ports = [
        "5405", "5406", "5407", "5408", "5409", "5410", "5411", "5412",
    ]
    .iter()
    .any(|p| l.contains(p));
    drops && ports && (l.contains("udp") || l.contains("-p 17"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewall_lines() {
        assert!(blocks_corosync("\t\tudp dport 5405 drop"));
        assert!(blocks_corosync(
            "-A INPUT -p udp -m udp --dport 5405:5412 -j DROP"
        ));
        assert!(!blocks_corosync("\t\tudp dport 5405 accept"));
        assert!(!blocks_corosync("\t\ttcp dport 22 drop"));
    }
}
