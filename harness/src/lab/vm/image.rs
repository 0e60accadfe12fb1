//! The VM lab's node image: built once from Debian's packages by the recipe
//! in `image.sh`, cached under the recipe's hash (a changed recipe builds a
//! new image; an unchanged one is reused), shared read-only by every VM
//! through a copy-on-write overlay of its own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::lab::{host, LabError};

/// The recipe, run with `sh`: debootstrap, the node's configuration, the
/// file system.
pub const RECIPE: &str = include_str!("image.sh");

/// Where images are kept: `CORODRILL_VM_CACHE`, else /var/cache/corodrill/vm.
pub fn cache_root() -> PathBuf {
    std::env::var_os("CORODRILL_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/corodrill/vm"))
}

/// The Debian mirror debootstrap reads: `CORODRILL_VM_MIRROR`, else Debian's.
fn mirror() -> String {
    std::env::var("CORODRILL_VM_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into())
}

/// The first 16 hex digits of the recipe's SHA-256: the image's name.
pub fn recipe_id() -> String {
    Sha256::digest(RECIPE.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A built image: the files the recipe leaves.
#[derive(Debug, Clone)]
pub struct Image {
    pub dir: PathBuf,
}

impl Image {
    pub fn base(&self) -> PathBuf {
        self.dir.join("base.qcow2")
    }
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }
    /// The private key that logs in as root on every node of the image.
    pub fn key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    /// The host key every node shares, for ssh's StrictHostKeyChecking.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
    fn complete(&self) -> bool {
        [
            self.base(),
            self.kernel(),
            self.initrd(),
            self.key(),
            self.known_hosts(),
        ]
        .iter()
        .all(|p| p.is_file())
    }
}

/// The cached image of this recipe, built first if there is none. Two
/// corodrills asking at once build it once: the second waits on the cache's
/// lock and finds it built.
pub fn ensure(progress: &dyn Fn(&str)) -> Result<(Image, bool), LabError> {
    let root = cache_root();
    let image = Image {
        dir: root.join(recipe_id()),
    };
    if image.complete() {
        return Ok((image, false));
    }
    host::create_dir(&root)?;
    let lock_path = root.join(".lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| LabError::io(format!("creating {}", lock_path.display()), e))?;
    progress(&format!(
        "waiting for the image cache's lock {}",
        lock_path.display()
    ));
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| LabError::io(format!("locking {}", lock_path.display()), e.into()))?;
    if image.complete() {
        return Ok((image, false));
    }
    let work = root.join(format!("{}.building", recipe_id()));
    // Left by a build that died: the lock says no one else builds it now.
    remove_dir(&work)?;
    remove_dir(&image.dir)?;
    host::create_dir(&work)?;
    let started = Instant::now();
    progress(&format!(
        "building the VM image {} (Debian 12 from {}; about a minute, once per recipe)",
        image.dir.display(),
        mirror()
    ));
    let result = run_recipe(&work, progress);
    if let Err(e) = result {
        let _ = remove_dir(&work);
        return Err(e);
    }
    std::fs::rename(&work, &image.dir)
        .map_err(|e| LabError::io(format!("renaming {} into place", work.display()), e))?;
    progress(&format!(
        "built the VM image in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    remove_stale(&root, &image.dir);
    Ok((image, true))
}

/// Images of older recipes that no lab boots any more: each is about
/// 450 MB. One a lab still runs on stays until a later build.
fn remove_stale(root: &Path, current: &Path) {
    let in_use: Vec<PathBuf> = crate::lab::list()
        .iter()
        .filter_map(|name| crate::lab::Lab::open(name).ok())
        .filter_map(|lab| lab.spec().vm.as_ref().and_then(|vm| vm.image.clone()))
        .collect();
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_image = name.len() == 16 && name.chars().all(|c| c.is_ascii_hexdigit());
        if is_image && path != current && !in_use.contains(&path) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn run_recipe(work: &Path, progress: &dyn Fn(&str)) -> Result<(), LabError> {
    let script = work.join("image.sh");
    host::write_file(&script, RECIPE.as_bytes())?;
    let log = work.join("recipe.log");
    let log_file = std::fs::File::create(&log)
        .map_err(|e| LabError::io(format!("creating {}", log.display()), e))?;
    let mut child = Command::new("sh")
        .arg(&script)
        .arg(work)
        .arg(mirror())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .map_err(|e| LabError::io("running the image recipe", e))?;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            progress(&line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| LabError::io("waiting for the image recipe", e))?;
    if !status.success() {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = said.lines().rev().take(15).collect();
        return Err(LabError::Failed(format!(
            "building the VM image failed ({status}): {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )));
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<(), LabError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io(format!("removing {}", dir.display()), e)),
    }
}

/// The tools the recipe and the lab run on this machine, with the Debian
/// package of each.
pub const TOOLS: &[(&str, &str)] = &[
    ("debootstrap", "debootstrap"),
    ("mkfs.ext4", "e2fsprogs"),
    ("qemu-img", "qemu-utils"),
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_id_is_sixteen_hex_digits_and_stable() {
        let id = recipe_id();
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(id, recipe_id());
    }
}
