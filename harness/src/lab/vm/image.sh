#!/bin/sh
# The recipe of the VM lab's node image: Debian 12 from Debian's packages,
# built by debootstrap, booted by QEMU with the kernel and initrd taken out of
# it. corodrill runs it as `sh image.sh WORK_DIR MIRROR` and caches what it
# leaves in WORK_DIR under the hash of this file: a change here rebuilds it.
#
# WORK_DIR gets: base.qcow2 (the root file system, ext4 labelled root),
# vmlinuz, initrd.img, id_ed25519 (the key that logs in as root) and
# known_hosts (the host key every node of the image shares).
set -eu
work=$1
mirror=$2
root=$work/root

# What every node needs: corosync and its QDevice client, the agent's
# libraries and tools (the .deb's dependencies, so `dpkg -i` needs no
# network), sshd, and systemd-timesyncd, as on a real Debian node; sudo for
# the Vagrant box made of this image (Vagrant runs its commands through it).
packages=systemd-sysv,udev,dbus,kmod,procps,iputils-ping,iproute2,nftables,iptables,\
openssh-server,sudo,corosync,corosync-qdevice,corosync-qnetd,libquorum5,libvotequorum8,libcmap4,libcfg7,\
systemd-timesyncd,linux-image-cloud-amd64

echo "image: debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }

echo "image: configuring"
# Each node's addresses come from its kernel command line
# (corodrill.net=eth0:198.18.250.1/24,eth1:198.18.0.1/24, or eth0:dhcp as
# the Vagrant box's management network wants), so that one image serves
# every node; systemd-networkd applies them.
cat >"$root/usr/local/sbin/corodrill-vmnet" <<'SCRIPT'
#!/bin/sh
set -eu
nets=
for arg in $(cat /proc/cmdline); do
  case $arg in corodrill.net=*) nets=${arg#corodrill.net=} ;; esac
done
mkdir -p /run/systemd/network
IFS=,
for n in $nets; do
  case ${n#*:} in
    dhcp) address=DHCP=ipv4 ;;
    *) address=Address=${n#*:} ;;
  esac
  printf '[Match]\nName=%s\n\n[Network]\n%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
    "${n%%:*}" "$address" >"/run/systemd/network/10-${n%%:*}.network"
done
SCRIPT
chmod 755 "$root/usr/local/sbin/corodrill-vmnet"
cat >"$root/etc/systemd/system/corodrill-vmnet.service" <<'UNIT'
[Unit]
Description=corodrill lab: this node's addresses from the kernel command line
DefaultDependencies=no
Before=systemd-networkd.service network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/corodrill-vmnet

[Install]
WantedBy=sysinit.target
UNIT
printf '/dev/vda / ext4 defaults,noatime 0 1\n' >"$root/etc/fstab"
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
# No name server: debootstrap left this machine's, which a guest cannot
# reach, and every lookup of a name not in /etc/hosts (sudo's of the host
# name, `hostname -f`) waited for its time-outs (34 s of a `vagrant up`).
# With none, such a lookup fails at once.
rm -f "$root/etc/resolv.conf"
: >"$root/etc/resolv.conf"
# Every node makes its own machine id at its first boot.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
mkdir -p "$root/var/log/journal"

# corosync starts at every boot, as on a real node, once corodrill has
# given the node its key (and configuration); timers that would load the
# nodes while they are measured are masked.
mkdir -p "$root/etc/systemd/system/corosync.service.d"
printf '[Unit]\nConditionPathExists=/etc/corosync/authkey\n' \
  >"$root/etc/systemd/system/corosync.service.d/corodrill-lab.conf"
rm -f "$root/etc/corosync/authkey"
chroot "$root" systemctl enable --quiet systemd-networkd corodrill-vmnet corosync
chroot "$root" systemctl disable --quiet corosync-qdevice corosync-qnetd
chroot "$root" systemctl mask --quiet apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer

ssh-keygen -q -t ed25519 -N '' -C corodrill-vm-lab -f "$work/id_ed25519"
mkdir -p -m 700 "$root/root/.ssh"
cp "$work/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
printf '198.18.* %s\n' "$(cut -d' ' -f1,2 "$root/etc/ssh/ssh_host_ed25519_key.pub")" >"$work/known_hosts"

cp "$(ls "$root"/boot/vmlinuz-* | tail -n 1)" "$work/vmlinuz"
cp "$(ls "$root"/boot/initrd.img-* | tail -n 1)" "$work/initrd.img"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

echo "image: file system"
mkfs.ext4 -q -L root -d "$root" "$work/root.raw" 2G >/dev/null
qemu-img convert -O qcow2 "$work/root.raw" "$work/base.qcow2"
rm -rf "$work/root.raw" "$root"
