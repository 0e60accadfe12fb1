//! Proxmox VE on the node: whether `/etc/pve` takes writes, and which HA
//! services are configured. `ha-manager status` itself is read by
//! `corodrill_status::ha_manager`, which fuzzing can reach.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// An entry of pmxcfs's own database on every PVE node (pve-cluster creates
/// `nodes/<node>/` when the node is set up). Not `/etc/pve` itself: pmxcfs
/// answers for its mount point from `cfs_plug_base_getattr`, always 0777
/// (0755 after masking), quorate or not.
pub const ETC_PVE_PROBE: &str = "/etc/pve/nodes";

/// Whether pmxcfs would take a write to `path` now, read from its mode
/// bits without writing: `None` if `path` does not exist (not a PVE node).
///
/// pmxcfs's `cfs_plug_memdb_getattr` fills the mode through
/// `tree_entry_stat(te, stbuf, cfs_is_quorate())`: 0666 files and 0777
/// directories while quorate, 0444 and 0555 while not; `cfs_fuse_getattr`
/// then masks them to 0640/0755 (0600/0700 under `priv`) or 0440/0555
/// (0400/0500). The owner's write bit is exactly quorum. The kernel may
/// cache the attributes for FUSE's default second, so the answer can lag
/// a quorum change by about that. `path` must be inside `/etc/pve`, not
/// the mount point (see [`ETC_PVE_PROBE`]).
pub fn etc_pve_writable(path: &Path) -> Option<bool> {
    match std::fs::metadata(path) {
        Ok(meta) => Some(meta.permissions().mode() & 0o200 != 0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        // There but unreadable: a dead pmxcfs leaves its mount answering
        // ENOTCONN, and nothing can be written there either.
        Err(_) => Some(false),
    }
}

/// Where the HA manager's resources are configured (pmxcfs).
pub const RESOURCES_CFG: &str = "/etc/pve/ha/resources.cfg";

/// The HA services configured in `resources.cfg` (a section config: a
/// `type: id` header per resource, its properties indented below), as
/// service ids such as `vm:100`. Missing file: no services.
pub fn configured_services(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|text| parse_resources_cfg(&text))
        .unwrap_or_default()
}

fn parse_resources_cfg(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with(char::is_whitespace) && !l.starts_with('#'))
        .filter_map(|l| {
            let (kind, id) = l.split_once(':')?;
            let (kind, id) = (kind.trim(), id.trim());
            (!kind.is_empty() && !id.is_empty() && !id.contains(char::is_whitespace))
                .then(|| format!("{kind}:{id}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_services_from_resources_cfg() {
        // A section config: `type: id` headers, properties indented.
        let cfg = "vm: 501\n\tstate started\n\tmax_relocate 2\n\nct: 102\n\tgroup mygroup\n";
        assert_eq!(parse_resources_cfg(cfg), ["vm:501", "ct:102"]);
        assert!(configured_services(Path::new("/nonexistent/resources.cfg")).is_empty());
    }

    #[test]
    fn writable_from_mode_bits() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("corodrill-pve-ha-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("corosync.conf");
        std::fs::write(&file, "totem {}\n").unwrap();
        let chmod = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
        };

        // What pmxcfs shows quorate, then inquorate.
        chmod(&file, 0o640);
        assert_eq!(etc_pve_writable(&file), Some(true));
        chmod(&file, 0o440);
        assert_eq!(etc_pve_writable(&file), Some(false));
        chmod(&dir, 0o555);
        assert_eq!(etc_pve_writable(&dir), Some(false));
        chmod(&dir, 0o755);
        assert_eq!(etc_pve_writable(&dir), Some(true));
        assert_eq!(etc_pve_writable(&dir.join("absent")), None);
        // The probe must be an entry of pmxcfs's database, not its mount point.
        let probe = Path::new(ETC_PVE_PROBE);
        assert!(probe.starts_with("/etc/pve") && probe != Path::new("/etc/pve"));

        std::fs::remove_dir_all(&dir).unwrap();
    }
}
