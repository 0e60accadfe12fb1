#!/usr/bin/env bash
# Provisions the QDevice host of the Vagrant lab, as root (Vagrant's shell
# provisioner); converges when run again. NAME: its host name.
set -euo pipefail
: "${NAME:?}"

# The Vagrantfile sets no vm.hostname (see there): the host is named here,
# its name on the loopback so that sudo finds it.
[[ $(cat /etc/hostname 2>/dev/null) == "$NAME" ]] || echo "$NAME" >/etc/hostname
[[ $(hostname) == "$NAME" ]] || hostname "$NAME"
grep -qE "^127\.0\.1\.1[[:space:]]+$NAME\$" /etc/hosts || echo "127.0.1.1 $NAME" >>/etc/hosts

# apt only if the box lacks it (`corodrill lab box` has it): no network then.
if ! dpkg-query -W -f='${Status}' corosync-qnetd 2>/dev/null | grep -q "install ok installed"; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends corosync-qnetd
fi

# The nodes' corosync.conf says `tls: off`, as the network-namespace lab
# does: no certificates to hand out between the VMs.
defaults=/etc/default/corosync-qnetd
want='COROSYNC_QNETD_OPTIONS="-s off"'
systemctl enable -q corosync-qnetd
if ! grep -qxF "$want" "$defaults"; then
  sed -i "s/^COROSYNC_QNETD_OPTIONS=.*/$want/" "$defaults"
  grep -qxF "$want" "$defaults" || echo "$want" >>"$defaults"
  systemctl restart corosync-qnetd
else
  systemctl start corosync-qnetd
fi
