//! Whether this machine can run a lab, naming what to install (the
//! corosync tools, libfaketime) before anything is built.

use std::path::{Path, PathBuf};

use super::{host, pacemaker, LabError, LabSpec, LIBFAKETIME};

/// Checks that this machine can run a lab, naming what to install.
pub(super) fn check_environment(spec: &LabSpec) -> Result<(), LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::Environment(
            "the lab needs root (it creates network namespaces and starts corosync): run as root"
                .into(),
        ));
    }
    let mut needed = vec![
        ("corosync", "corosync"),
        ("corosync-quorumtool", "corosync"),
        ("corosync-cfgtool", "corosync"),
        ("nft", "nftables"),
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
    ];
    if spec.ssh {
        needed.push(("sshd", "openssh-server"));
        needed.push(("ssh", "openssh-client"));
        needed.push(("ssh-keygen", "openssh-client"));
    }
    if spec.qdevice {
        needed.push(("corosync-qnetd", "corosync-qnetd"));
        needed.push(("corosync-qdevice", "corosync-qdevice"));
    }
    if spec.pacemaker {
        needed.push(("pacemakerd", "pacemaker"));
        needed.push(("crm_mon", "pacemaker-cli-utils"));
        needed.push(("crm_attribute", "pacemaker-cli-utils"));
        needed.push(("cibadmin", "pacemaker-cli-utils"));
        needed.push(("findmnt", "util-linux"));
    }
    let missing: Vec<String> = needed
        .iter()
        .filter(|(program, _)| host::which(program).is_none())
        .map(|(program, package)| format!("{program} (Debian package {package})"))
        .collect();
    if !missing.is_empty() {
        return Err(LabError::Environment(format!(
            "missing: {}; install with: apt-get install {}",
            missing.join(", "),
            needed
                .iter()
                .filter(|(program, _)| host::which(program).is_none())
                .map(|(_, package)| *package)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(" ")
        )));
    }
    if libfaketime().is_none() {
        return Err(LabError::Environment(
            "missing libfaketime (lab nodes run under it so that clock skew never touches the host clock); \
             install with: apt-get install libfaketime"
                .into(),
        ));
    }
    if spec.pacemaker {
        pacemaker::check_environment(spec)?;
    }
    Ok(())
}

pub(super) fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ]
    .iter()
    .map(|dir| Path::new(dir).join(LIBFAKETIME))
    .find(|p| p.is_file())
}
