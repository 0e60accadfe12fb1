//! `corodrill lab box`: the VM lab's image as a Vagrant box for
//! vagrant-libvirt, so that the Vagrantfile comes up from the same Debian
//! system the VM lab boots, built here from Debian's packages, with nothing
//! downloaded from a box catalogue.
//!
//! The box boots the image's kernel directly (the image has no bootloader)
//! and is logged into as root with the image's key; its management NIC
//! takes its address by DHCP from vagrant-libvirt's network.

use std::path::Path;
use std::process::Command;

use super::image::Image;
use crate::lab::{host, LabError};

/// What Vagrant reads first in a box: the provider and the disk's format.
/// `virtual_size` is the image's file system size in GB (image.sh).
const METADATA: &str = r#"{"provider": "libvirt", "format": "qcow2", "virtual_size": 2}
"#;

/// The box's own Vagrantfile, merged under the project's: how to boot and
/// log into this image. `__dir__` is where Vagrant unpacked the box.
const BOX_VAGRANTFILE: &str = r#"# A corodrill VM-lab image as a vagrant-libvirt box (`corodrill lab box`).
kvm = File.exist?("/dev/kvm") && File.read("/proc/cpuinfo").match?(/\b(vmx|svm)\b/)
Vagrant.configure("2") do |config|
  config.ssh.username = "root"
  config.ssh.private_key_path = File.join(__dir__, "id_ed25519")
  config.ssh.insert_key = false
  config.vm.provider :libvirt do |lv|
    lv.kernel = File.join(__dir__, "vmlinuz")
    lv.initrd = File.join(__dir__, "initrd.img")
    lv.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0 mitigations=off corodrill.net=eth0:dhcp"
    lv.disk_bus = "virtio"
    lv.nic_model_type = "virtio"
    # KVM where this machine runs it, else QEMU's translator (TCG), which
    # has no host CPU model to pass through.
    unless kvm
      lv.driver = "qemu"
      lv.cpu_mode = "custom"
      lv.cpu_model = "qemu64"
    end
  end
end
"#;

/// Writes the box for `image` to `out` (a tar file, replaced whole).
pub fn write(image: &Image, out: &Path) -> Result<(), LabError> {
    let name = out
        .file_name()
        .ok_or_else(|| LabError::invalid(format!("--out {}: not a file name", out.display())))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let staging = parent.join(format!(".{}.staging", name.to_string_lossy()));
    let _ = std::fs::remove_dir_all(&staging);
    host::create_dir(&staging)?;
    let result = stage_and_pack(image, &staging, out);
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn stage_and_pack(image: &Image, staging: &Path, out: &Path) -> Result<(), LabError> {
    host::write_file(&staging.join("metadata.json"), METADATA.as_bytes())?;
    host::write_file(&staging.join("Vagrantfile"), BOX_VAGRANTFILE.as_bytes())?;
    for (from, to) in [
        (image.base(), "box.img"),
        (image.kernel(), "vmlinuz"),
        (image.initrd(), "initrd.img"),
        (image.key(), "id_ed25519"),
    ] {
        let dest = staging.join(to);
        // A hard link where the cache and the box share a file system:
        // the disk is 450 MB.
        if std::fs::hard_link(&from, &dest).is_err() {
            std::fs::copy(&from, &dest)
                .map_err(|e| LabError::io(format!("copying {} into the box", from.display()), e))?;
        }
    }
    let partial = out.with_extension("box.partial");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&partial)
        .arg("-C")
        .arg(staging)
        .args([
            "metadata.json",
            "Vagrantfile",
            "box.img",
            "vmlinuz",
            "initrd.img",
            "id_ed25519",
        ])
        .status()
        .map_err(|e| LabError::io("running tar", e))?;
    if !status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(LabError::Failed(format!(
            "tar of the box into {} failed ({status})",
            partial.display()
        )));
    }
    std::fs::rename(&partial, out)
        .map_err(|e| LabError::io(format!("renaming the box to {}", out.display()), e))
}
