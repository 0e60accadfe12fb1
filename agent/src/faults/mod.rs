//! Fault kinds. Each module holds one kind's `apply` and `rollback` side by
//! side, and `check`, which reads the node's state back after a rollback.
//! Rollbacks are idempotent: rolling back what is already gone succeeds.
//!
//! What `apply` returns (`Undo`) is journaled before the fault takes effect
//! where that is possible, and is all a fresh agent needs to roll it back.

pub mod clock;
pub mod command;
pub mod cut;
pub mod degrade;
pub mod delay;
pub mod link;
pub mod process;

use std::net::IpAddr;

use corodrill_protocol::Fault;
use serde::{Deserialize, Serialize};

use crate::nft::NftSession;
use crate::node::Node;

/// What rolls a fault back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Undo {
    /// Chains and sets of corodrill's owned nftables table.
    Nft(cut::NftObjects),
    LinkUp(link::LinkUndo),
    Degrade(degrade::DegradeUndo),
    Process(process::ProcessUndo),
    Clock(clock::ClockUndo),
    Command(command::CommandUndo),
}

/// What the faults share on this node.
pub struct Ctx {
    pub node: Node,
    /// The `nft -i` that owns corodrill's table, while a fault uses it.
    pub nft: Option<NftSession>,
    /// Numbers nftables object names (fault ids are the operator's words and
    /// may hold any character).
    next_object: u64,
    /// The objects of the nft-using faults applied now; when none is left
    /// the session is dropped and the table goes with it.
    pub nft_objects: Vec<cut::NftObjects>,
    /// How long nftables set elements live without renewal (a little past
    /// the lease): the kernel-side dead-man.
    pub deadman: std::time::Duration,
    /// The controller's address when it arrived over ssh: never cut it.
    pub management: Option<IpAddr>,
    /// Running user-space delay lines, by their iptables chain.
    pub delay_lines: Vec<(String, delay::DelayLine)>,
    /// When the fault being applied took effect, if its module knows it
    /// more closely than "when apply returned" (monotonic ns).
    pub took_effect_ns: Option<u64>,
}

impl Ctx {
    pub fn new(node: Node) -> Ctx {
        Ctx {
            node,
            nft: None,
            next_object: 0,
            nft_objects: Vec::new(),
            deadman: std::time::Duration::from_secs(30),
            management: management_address(),
            delay_lines: Vec::new(),
            took_effect_ns: None,
        }
    }

    pub fn object_name(&mut self, prefix: &str) -> String {
        self.next_object += 1;
        format!("{prefix}{}_{}", std::process::id(), self.next_object)
    }

    /// Starts `nft -i` ahead of any fault (an owning agent does at once):
    /// starting it costs hundreds of milliseconds on a slow guest, which a
    /// fault timed to an instant must not pay. Nothing changes in the
    /// kernel; a failure here is met again, and reported, by the first cut.
    pub fn prepare_nft(&mut self) {
        if self.nft.is_none() {
            self.nft = NftSession::start().ok();
        }
    }

    /// The owned table, made ready before a fault is journaled: an empty
    /// table drops nothing, and goes with the nft process if the agent dies.
    /// `journaled` is the journal's word; when it refused, a table that no
    /// fault uses goes again.
    pub fn nft_table_then(
        &mut self,
        journaled: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), String> {
        self.nft()?;
        journaled().inspect_err(|_| {
            if self.nft_objects.is_empty() {
                if let Some(nft) = self.nft.as_mut() {
                    let _ = nft.delete_table();
                }
            }
        })
    }

    pub fn nft(&mut self) -> Result<&mut NftSession, String> {
        if self.nft.as_mut().is_some_and(|s| !s.is_alive()) {
            self.nft = None;
        }
        if self.nft.is_none() {
            self.nft = Some(NftSession::start().map_err(|e| e.to_string())?);
        }
        let session = self
            .nft
            .as_mut()
            .ok_or_else(|| "nft session unavailable".to_string())?;
        session.create_table().map_err(|e| e.to_string())?;
        Ok(session)
    }
}

/// `SSH_CONNECTION` is "client port server port": the client is the
/// controller's address on the management network.
fn management_address() -> Option<IpAddr> {
    std::env::var("SSH_CONNECTION")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Applies a fault and returns how to undo it. `journal` is called with the
/// undo *before* the fault takes effect (for faults whose undo is known in
/// advance); it must succeed or nothing is applied.
pub fn apply(
    ctx: &mut Ctx,
    fault: &Fault,
    allow_management_cut: bool,
    journal: &mut dyn FnMut(&Undo) -> Result<(), String>,
) -> Result<Undo, String> {
    if !allow_management_cut {
        refuse_management_cut(ctx, fault)?;
    }
    match fault {
        Fault::Cut { peers, direction } => cut::apply(ctx, peers, *direction, journal),
        Fault::LinkDown { address } => link::apply(ctx, *address, journal),
        Fault::Degrade {
            peers,
            addresses,
            loss_percent,
            delay_ms,
            jitter_ms,
            rate,
        } => degrade::apply(
            ctx,
            &degrade::Degrade {
                peers: peers.clone(),
                addresses: addresses.clone(),
                loss_percent: *loss_percent,
                delay_ms: *delay_ms,
                jitter_ms: *jitter_ms,
                rate: rate.clone(),
            },
            journal,
        ),
        Fault::Kill | Fault::Stop | Fault::Pause => process::apply(ctx, fault, journal),
        Fault::ClockSkew {
            offset_ms,
            strobe_ms,
        } => clock::apply(ctx, *offset_ms, *strobe_ms, journal),
        Fault::Command {
            run,
            undo,
            timeout_ms,
        } => command::apply(run, undo.as_deref(), *timeout_ms, journal),
    }
}

/// Rolls a fault back, then reads the state back. `Ok(detail)` means the
/// node is clean of it; `Err` says what is left or could not be read.
pub fn rollback(ctx: &mut Ctx, undo: &Undo) -> Result<String, String> {
    match undo {
        Undo::Nft(objects) => cut::rollback(ctx, objects),
        Undo::LinkUp(u) => link::rollback(u),
        Undo::Degrade(u) => degrade::rollback(ctx, u),
        Undo::Process(u) => process::rollback(ctx, u),
        Undo::Clock(u) => clock::rollback(ctx, u),
        Undo::Command(u) => command::rollback(u),
    }
}

/// What a reboot did to a fault applied before it, if that settles it:
/// kernel state (nftables, qdiscs, NFQUEUE rules, link state) and processes
/// do not survive a reboot; a clock stepped before it cannot be put back
/// from the journal (the monotonic clock restarted). None: roll it back as
/// usual (an operator command's undo).
pub fn after_reboot(undo: &Undo) -> Option<Result<String, String>> {
    match undo {
        Undo::Nft(_) | Undo::LinkUp(_) | Undo::Degrade(_) | Undo::Process(_) => {
            Some(Ok("the node rebooted since: the fault went with it".into()))
        }
        Undo::Clock(_) => Some(Err(
            "the node rebooted while its clock was skewed: check that NTP has set it right".into(),
        )),
        Undo::Command(_) => None,
    }
}

fn refuse_management_cut(ctx: &Ctx, fault: &Fault) -> Result<(), String> {
    let Some(mgmt) = ctx.management else {
        return Ok(());
    };
    let cuts_it = match fault {
        Fault::Cut { peers, .. } => peers.contains(&mgmt),
        Fault::Degrade { peers, .. } => peers.contains(&mgmt),
        Fault::LinkDown { address } => link::interface_of(*address).ok().is_some_and(|iface| {
            link::interface_of_route_to(mgmt).as_deref() == Some(iface.as_str())
        }),
        _ => false,
    };
    if cuts_it {
        return Err(format!(
            "refused: this fault would cut the controller's own connection (from {mgmt}, SSH_CONNECTION); \
             the experiment must allow it explicitly"
        ));
    }
    Ok(())
}

/// UDP ports corosync (knet) uses: 5405 and up, one per link at most.
pub const COROSYNC_PORTS: &str = "5405-5412";

/// An nftables address match for a set of peers of one family.
pub fn family(addr: &IpAddr) -> (&'static str, &'static str) {
    match addr {
        IpAddr::V4(_) => ("ip", "ipv4_addr"),
        IpAddr::V6(_) => ("ip6", "ipv6_addr"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reboot_settles_kernel_and_process_faults_but_not_commands() {
        let command = Undo::Command(command::CommandUndo {
            undo: Some("pvecm expected 3".into()),
            timeout_ms: None,
        });
        assert_eq!(after_reboot(&command), None);
        let clock = Undo::Clock(clock::ClockUndo {
            target: clock::ClockTarget::Settime {
                real_ns: 0,
                mono_ns: 0,
                boot_id: "an-earlier-boot".into(),
            },
            offset_ms: 300_000,
            strobe_ms: None,
            skewed: true,
            flipped_mono_ns: 0,
        });
        assert!(matches!(after_reboot(&clock), Some(Err(m)) if m.contains("NTP")));
    }
}
