//! `run --pacemaker-alert`: corodrill's Pacemaker alert installed on a real
//! cluster for one drill, as a `command` fault of the first node's agent,
//! so that it is journaled there before it takes effect, held by the
//! drill's lease, and undone at the drill's last heal, by the agent when
//! the lease runs out, by its guard when the agent dies, or at the node's
//! next boot. It is applied before the drill's clock starts (not part of
//! the drill's log) and is not one of the experiment's faults: the judge
//! never sees it.
//!
//! The CIB is the cluster's, so one node installs it for all. The alert
//! agent is the agent's own binary at the path the first node's agent runs
//! from (the parent of the command's shell): every node must have it there
//! (the package puts it in /usr/bin). The recipient is each node's own
//! alert file (`corodrill-agent`'s `pacemaker_alert::ALERT_FILE`, the
//! lab's `pacemaker::ALERT_RECIPIENT`), which that node's watch follows.

use corodrill_protocol::Fault;

use crate::experiment::{Experiment, WatchKind};
use crate::lab::pacemaker::ALERT_RECIPIENT;
use crate::plan::PlannedFault;

use super::{Drill, RunError};

/// The alert's id in the CIB, and the fault's id on the node.
pub const ALERT_ID: &str = "corodrill-run";

/// The commands that install and remove it (`sh -c` on the node). The
/// install creates the CIB's alerts section when there is none; the
/// removal is read back: it succeeds only when no such alert is left.
pub fn commands() -> (String, String) {
    let alert = format!(
        "<alert id=\\\"{ALERT_ID}\\\" path=\\\"$p\\\"><select><select_resources/></select>\
         <recipient id=\\\"{ALERT_ID}-recipient\\\" value=\\\"{ALERT_RECIPIENT}\\\"/></alert>"
    );
    let run = format!(
        "p=$(readlink /proc/$PPID/exe) && {{ \
         cibadmin --create --scope alerts --xml-text \"{alert}\" 2>/dev/null \
         || cibadmin --create --scope configuration --xml-text \"<alerts>{alert}</alerts>\"; }}"
    );
    let undo = format!(
        "cibadmin --delete --xml-text '<alert id=\"{ALERT_ID}\"/>' >/dev/null 2>&1; \
         ! cibadmin --query --xpath \"//alert[@id='{ALERT_ID}']\" >/dev/null 2>&1"
    );
    (run, undo)
}

impl<'a> Drill<'a> {
    /// Installs the alert when the drill watches a Pacemaker resource.
    pub(super) fn install_pacemaker_alert(&mut self, e: &Experiment) -> Result<(), RunError> {
        if !e.watches.iter().any(|w| w.kind == WatchKind::Pacemaker) {
            return Ok(());
        }
        let Some(node) = self.agents.first().map(|a| a.node.clone()) else {
            return Ok(());
        };
        (self.opts.progress)(&format!(
            "installing corodrill's Pacemaker alert from {node} (removed at the drill's last heal)"
        ));
        let (run, undo) = commands();
        let fault = PlannedFault {
            id: ALERT_ID.to_owned(),
            kind: "command",
            at: std::time::Duration::ZERO,
            heal_at: None,
            allow_management_cut: false,
            actions: vec![(
                node,
                Fault::Command {
                    run,
                    undo: Some(undo),
                    timeout_ms: Some(30_000),
                },
            )],
            power_off: Vec::new(),
        };
        self.apply_agents(&fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The install and its removal, run by a real shell against a stand-in
    /// `cibadmin` that keeps the CIB's alerts in a file: created once,
    /// removed, and the removal read back (it fails while one is left).
    #[test]
    fn the_alert_is_installed_and_removed_by_the_shell_commands() {
        let dir = std::env::temp_dir().join(format!("corodrill-alert-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cib = dir.join("alerts");
        let fake = dir.join("cibadmin");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nf={}\ncase \"$1 $3\" in\n\
                 '--create alerts') [ -e $f ] || exit 105; echo \"$5\" >> $f ;;\n\
                 '--create configuration') echo \"$5\" > $f ;;\n\
                 '--delete '*) rm -f $f ;;\n\
                 '--query '*) [ -s $f ] ;;\n\
                 esac\n",
                cib.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let sh = |cmd: &str| {
            std::process::Command::new("sh")
                .args(["-c", cmd])
                .env("PATH", &path)
                .status()
                .unwrap()
                .success()
        };
        let (run, undo) = commands();
        assert!(sh(&run));
        let text = std::fs::read_to_string(&cib).unwrap();
        assert!(
            text.starts_with("<alerts><alert id=\"corodrill-run\" path=\"/")
                && text.contains("value=\"/run/corodrill-agent/pacemaker-alerts\""),
            "{text}"
        );
        assert!(!text.contains("$p"), "{text}");
        assert!(sh(&undo));
        assert!(!cib.exists());
        assert!(sh(&undo), "removing what is gone succeeds");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
