//! `degrade`: corosync traffic with some peers loses packets (nftables
//! `numgen random`, in corodrill's owned table), and the interfaces of some
//! links are slowed (tc: tbf for a rate; netem for delay and jitter where
//! the kernel has it).
//!
//! Loss is owned by the agent's table and dies with it. The qdiscs are not
//! owned by anything: they are journaled and rolled back by the lease, by a
//! restarted agent, or by `corodrill-agent --rollback`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::cut::{self, chain_with_rules, create_sets, peer_sets, NftObjects};
use super::{delay, link, Ctx, Undo};
use crate::node::{run_ok, run_output};

pub struct Degrade {
    pub peers: Vec<IpAddr>,
    pub addresses: Vec<IpAddr>,
    pub loss_percent: Option<u8>,
    pub delay_ms: Option<u32>,
    pub jitter_ms: Option<u32>,
    pub rate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DegradeUndo {
    pub nft: Option<NftObjects>,
    /// Interfaces whose root qdisc this fault added.
    pub qdiscs: Vec<String>,
    /// The user-space delay line, where the kernel has no netem.
    #[serde(default)]
    pub delay_line: Option<delay::DelayUndo>,
}

/// The tc command for the interfaces, or why it cannot be done here.
fn qdisc_args(d: &Degrade, netem: bool) -> Result<Option<Vec<String>>, String> {
    if d.jitter_ms.is_some() && d.delay_ms.is_none() {
        return Err("jitter needs a delay".into());
    }
    if let Some(rate) = &d.rate {
        let digits = rate.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &rate[digits.len()..];
        if digits.is_empty()
            || !digits.chars().all(|c| c.is_ascii_digit())
            || !["bit", "kbit", "mbit", "gbit", "bps", "kbps", "mbps", "gbps"].contains(&unit)
        {
            return Err(format!(
                "rate {rate:?}: expected a number and a unit such as 1mbit or 500kbit"
            ));
        }
    }
    if let Some(delay) = d.delay_ms {
        if !netem {
            // The user-space delay line takes the delay; tc only the rate.
            return Ok(d.rate.as_ref().map(|rate| {
                ["tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"]
                    .map(String::from)
                    .to_vec()
            }));
        }
        let mut args: Vec<String> = ["netem", "delay"].map(String::from).to_vec();
        args.push(format!("{delay}ms"));
        if let Some(j) = d.jitter_ms {
            args.push(format!("{j}ms"));
        }
        if let Some(rate) = &d.rate {
            args.extend(["rate".to_string(), rate.clone()]);
        }
        return Ok(Some(args));
    }
    Ok(d.rate.as_ref().map(|rate| {
        ["tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"]
            .map(String::from)
            .to_vec()
    }))
}

pub fn apply(
    ctx: &mut Ctx,
    d: &Degrade,
    journal: &mut dyn FnMut(&Undo) -> Result<(), String>,
) -> Result<Undo, String> {
    if let Some(loss) = d.loss_percent {
        if loss == 0 || loss > 100 {
            return Err(format!("loss {loss}%: expected 1 to 100"));
        }
        if d.peers.is_empty() {
            return Err("loss needs the peers whose traffic to drop".into());
        }
    }
    let netem = ctx.node.capabilities().netem;
    let qdisc = qdisc_args(d, netem)?;
    let delay_line = match (d.delay_ms, netem) {
        (Some(_), false) => Some(delay::plan(ctx)),
        _ => None,
    };
    if d.loss_percent.is_none() && qdisc.is_none() && delay_line.is_none() {
        return Err("a degrade needs at least one of loss, delay, rate".into());
    }
    if qdisc.is_some() && d.addresses.is_empty() {
        return Err("delay and rate need the local addresses of the links to slow".into());
    }
    if d.delay_ms.is_some() && !netem && d.peers.is_empty() {
        return Err("a delay without netem needs the peers whose traffic to delay".into());
    }
    let interfaces: Vec<String> = match qdisc {
        Some(_) => d
            .addresses
            .iter()
            .map(|a| link::interface_of(*a))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };

    let mut cmds = Vec::new();
    let nft = d.loss_percent.map(|loss| {
        let sets = peer_sets(ctx, "loss", &d.peers);
        let base = ctx.object_name("loss");
        let verdict = format!("numgen random mod 100 < {loss} drop");
        cmds.push(create_sets(&sets, ctx.deadman));
        cmds.push(chain_with_rules(
            &format!("{base}_in"),
            "input",
            &sets,
            &verdict,
        ));
        cmds.push(chain_with_rules(
            &format!("{base}_out"),
            "output",
            &sets,
            &verdict,
        ));
        NftObjects {
            chains: vec![format!("{base}_in"), format!("{base}_out")],
            sets,
        }
    });
    let undo = DegradeUndo {
        nft: nft.clone(),
        qdiscs: interfaces.clone(),
        delay_line: delay_line.clone(),
    };
    if nft.is_some() {
        ctx.nft_table_then(|| journal(&Undo::Degrade(undo.clone())))?;
    } else {
        journal(&Undo::Degrade(undo.clone()))?;
    }
    if let (Some(line), Some(ms)) = (&delay_line, d.delay_ms) {
        delay::apply(ctx, line, &d.peers, ms, d.jitter_ms.unwrap_or(0))?;
    }

    if let Some(objects) = &nft {
        ctx.nft()?
            .run(&cmds.join("; "))
            .map_err(|e| e.to_string())?;
        ctx.nft_objects.push(objects.clone());
    }
    if let Some(args) = qdisc {
        for (i, interface) in interfaces.iter().enumerate() {
            let added = run_ok(
                crate::node::command("tc")
                    .args(["qdisc", "add", "dev", interface, "root"])
                    .args(&args),
            );
            if let Err(e) = added {
                // Put back what this fault did so far: nothing stays applied.
                let partial = DegradeUndo {
                    nft: nft.clone(),
                    qdiscs: interfaces[..i].to_vec(),
                    delay_line: delay_line.clone(),
                };
                let _ = rollback(ctx, &partial);
                return Err(e);
            }
        }
    }
    Ok(Undo::Degrade(undo))
}

pub fn rollback(ctx: &mut Ctx, undo: &DegradeUndo) -> Result<String, String> {
    let mut found = Vec::new();
    if let Some(line) = &undo.delay_line {
        found.push(delay::rollback(ctx, line)?);
    }
    if let Some(objects) = &undo.nft {
        found.push(cut::rollback(ctx, objects)?);
    }
    for interface in &undo.qdiscs {
        if ours(interface)? {
            run_ok(crate::node::command("tc").args(["qdisc", "del", "dev", interface, "root"]))?;
        }
    }
    let left: Vec<&str> = undo
        .qdiscs
        .iter()
        .filter(|i| ours(i).unwrap_or(true))
        .map(String::as_str)
        .collect();
    if !left.is_empty() {
        return Err(format!("tbf/netem qdisc still on {}", left.join(", ")));
    }
    if !undo.qdiscs.is_empty() {
        found.push(format!("no tbf/netem qdisc on {}", undo.qdiscs.join(", ")));
    }
    Ok(found.join("; "))
}

/// The interface's root qdisc is one a degrade adds.
fn ours(interface: &str) -> Result<bool, String> {
    let text =
        run_output(crate::node::command("tc").args(["qdisc", "show", "dev", interface, "root"]))?;
    Ok(text
        .lines()
        .any(|l| l.starts_with("qdisc tbf") || l.starts_with("qdisc netem")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn degrade(delay: Option<u32>, jitter: Option<u32>, rate: Option<&str>) -> Degrade {
        Degrade {
            peers: vec![],
            addresses: vec![],
            loss_percent: None,
            delay_ms: delay,
            jitter_ms: jitter,
            rate: rate.map(String::from),
        }
    }

    #[test]
    fn qdisc_choice() {
        assert_eq!(
            qdisc_args(&degrade(None, None, Some("1mbit")), false)
                .unwrap()
                .unwrap()[..3],
            ["tbf", "rate", "1mbit"]
        );
        // Without netem the delay goes to the user-space delay line; tc keeps the rate.
        assert_eq!(
            qdisc_args(&degrade(Some(80), None, None), false).unwrap(),
            None
        );
        assert_eq!(
            qdisc_args(&degrade(Some(80), None, Some("1mbit")), false)
                .unwrap()
                .unwrap()[0],
            "tbf"
        );
        let netem = qdisc_args(&degrade(Some(80), Some(5), Some("10mbit")), true)
            .unwrap()
            .unwrap();
        assert_eq!(netem, ["netem", "delay", "80ms", "5ms", "rate", "10mbit"]);
        assert!(qdisc_args(&degrade(None, Some(5), None), true).is_err());
        assert!(qdisc_args(&degrade(None, None, Some("fast")), true).is_err());
        assert!(qdisc_args(&degrade(None, None, None), true)
            .unwrap()
            .is_none());
    }
}
