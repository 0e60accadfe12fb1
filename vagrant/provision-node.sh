#!/usr/bin/env bash
# Provisions one corosync node of the Vagrant lab, as root (Vagrant's shell
# provisioner). It runs again on `vagrant provision` and converges: files are
# replaced only when they differ, corosync restarted only when its config or
# key changed.
#
# From the Vagrantfile's environment:
#   NAME     this node's name (its host name)
#   CLUSTER  cluster name
#   NODES    "name,ring0,ring1 ..." for every node, in node id order
#   PROFILE  fast | proxmox, as `corodrill lab up --profile`
#   TOKEN    totem token in ms, or empty for corosync's default
#   QNETD    the QDevice host's address, or empty for no QDevice
#   UPLOAD   where the file provisioners put corodrill-agent and authkey
set -euo pipefail

# corosync.conf as harness/src/lab/conf.rs writes it for a lab node; only
# the paths (Debian's defaults) and logging to syslog are a real node's.
render_corosync_conf() {
  local id=0 name ring0 ring1 entry
  echo "# written by vagrant/provision-node.sh for the Vagrant lab \"$CLUSTER\""
  echo "totem {"
  echo "  version: 2"
  echo "  cluster_name: $CLUSTER"
  echo "  config_version: 1"
  echo "  transport: knet"
  case "$PROFILE" in
    # What `pvecm create` writes on Proxmox VE 8.
    proxmox)
      echo "  ip_version: ipv4-6"
      echo "  link_mode: passive"
      echo "  secauth: on"
      echo "  token_coefficient: 125"
      ;;
    fast)
      echo "  crypto_cipher: aes256"
      echo "  crypto_hash: sha256"
      ;;
    *)
      echo "PROFILE=$PROFILE: expected fast or proxmox" >&2
      return 1
      ;;
  esac
  if [[ -n "$TOKEN" ]]; then
    echo "  token: $TOKEN"
  fi
  echo "  keyfile: /etc/corosync/authkey"
  echo "  interface {"
  echo "    linknumber: 0"
  echo "  }"
  echo "  interface {"
  echo "    linknumber: 1"
  echo "  }"
  echo "}"
  echo
  echo "nodelist {"
  for entry in $NODES; do
    IFS=, read -r name ring0 ring1 <<<"$entry"
    id=$((id + 1))
    echo "  node {"
    echo "    name: $name"
    echo "    nodeid: $id"
    echo "    quorum_votes: 1"
    echo "    ring0_addr: $ring0"
    echo "    ring1_addr: $ring1"
    echo "  }"
  done
  echo "}"
  echo
  echo "quorum {"
  echo "  provider: corosync_votequorum"
  if [[ -n "$QNETD" ]]; then
    echo "  device {"
    echo "    votes: 1"
    echo "    model: net"
    echo "    net {"
    echo "      host: $QNETD"
    echo "      algorithm: ffsplit"
    echo "      tls: off"
    echo "    }"
    echo "  }"
  fi
  echo "}"
  echo
  echo "logging {"
  echo "  to_syslog: yes"
  echo "  to_stderr: no"
  echo "  to_logfile: yes"
  echo "  logfile: /var/log/corosync/corosync.log"
  # Millisecond times: the ground truth corodrill's quorum times are checked against.
  echo "  timestamp: hires"
  echo "}"
}

# render_hosts HOSTS: HOSTS with every node's name on its ring0 address, as
# corosync and preflight need, and not on 127.0.1.1, where Vagrant puts it.
render_hosts() {
  local hosts=$1 name ring0 ring1 entry names=()
  for entry in $NODES; do
    IFS=, read -r name ring0 ring1 <<<"$entry"
    names+=("$name")
  done
  { grep -v -E "^127\.[0-9.]+[[:space:]].*\<($(IFS='|'; echo "${names[*]}"))\>" "$hosts" || true; } |
    sed '/^# corodrill-lab begin/,/^# corodrill-lab end/d'
  echo "# corodrill-lab begin (vagrant/provision-node.sh)"
  if [[ -n "$QNETD" ]]; then
    echo "$QNETD qnetd"
  fi
  for entry in $NODES; do
    IFS=, read -r name ring0 ring1 <<<"$entry"
    echo "$ring0 $name"
  done
  echo "# corodrill-lab end"
}

# converge DEST MODE < CONTENT: DEST gets CONTENT and MODE; CHANGED=1 if it
# differed. The new file is renamed into place, so a running binary (the
# agent) is replaced rather than written to. Feed it from a file or a
# variable, not a pipe: a pipe would run it in a subshell, and lose CHANGED.
CHANGED=0
converge() {
  local dest=$1 mode=$2 tmp
  tmp=$(mktemp "$dest.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
    chmod "$mode" "$dest"
  else
    mv -f "$tmp" "$dest"
    CHANGED=1
  fi
}

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# install_missing PACKAGE...: apt only for what the box lacks, so that a box
# that has them all (`corodrill lab box`) comes up with no network.
install_missing() {
  local missing=() p
  for p in "$@"; do
    installed "$p" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

main() {
  : "${NAME:?}" "${CLUSTER:?}" "${NODES:?}" "${PROFILE:?}" "${TOKEN?}" "${QNETD?}" "${UPLOAD:?}"
  # Also after a failure: the next `vagrant provision` uploads afresh, and
  # the key does not linger readable by the vagrant user.
  trap 'rm -rf "$UPLOAD"' EXIT
  local packages=(
    corosync
    # The agent is linked against these (rust-corosync).
    libquorum5 libvotequorum8 libcmap4 libcfg7 libcpg4 libcorosync-common4
    # Its faults: cuts (nftables), delays (iptables-legacy NFQUEUE), rates
    # and links (tc, ip); a skew steps the node's real clock.
    nftables iptables iproute2
  )
  # preflight checks the clock is synchronised, as on a Proxmox VE node:
  # chrony, unless the box has systemd-timesyncd.
  if ! installed systemd-timesyncd; then
    packages+=(chrony)
  fi
  if [[ -n "$QNETD" ]]; then
    packages+=(corosync-qdevice)
  fi
  install_missing "${packages[@]}"

  local hosts conf
  hosts=$(render_hosts /etc/hosts)
  converge /etc/hosts 0644 <<<"$hosts"
  # The Vagrantfile sets no vm.hostname (see there): the node is named here.
  converge /etc/hostname 0644 <<<"$NAME"
  [[ $(hostname) == "$NAME" ]] || hostname "$NAME"

  converge /usr/local/bin/corodrill-agent 0755 <"$UPLOAD/corodrill-agent"
  if ! /usr/local/bin/corodrill-agent --version >/dev/null; then
    echo "corodrill-agent does not run on Debian 12: build it on Debian 12 (its glibc and corosync libraries)" >&2
    exit 1
  fi

  echo "corodrill-agent $(/usr/local/bin/corodrill-agent --version | cut -d' ' -f2) installed"

  CHANGED=0
  converge /etc/corosync/authkey 0400 <"$UPLOAD/authkey"
  conf=$(render_corosync_conf)
  converge /etc/corosync/corosync.conf 0644 <<<"$conf"

  # The package started corosync on its own single-node config: restart it
  # on ours. It is enabled, so it also starts at boot (power-on drills).
  # (Asked first: enabling a unit that has an init script too runs
  # update-rc.d, seconds on an emulated CPU.)
  echo "corosync: $( ((CHANGED)) && echo restarting || echo starting) on the lab's configuration"
  systemctl is-enabled -q corosync || systemctl enable -q corosync
  if ((CHANGED)); then
    systemctl restart corosync
  else
    systemctl start corosync
  fi
  if [[ -n "$QNETD" ]]; then
    echo "corosync-qdevice: starting (QNetd at $QNETD)"
    systemctl is-enabled -q corosync-qdevice || systemctl enable -q corosync-qdevice
    if ((CHANGED)); then
      systemctl restart corosync-qdevice
    else
      systemctl start corosync-qdevice
    fi
  elif systemctl cat corosync-qdevice >/dev/null 2>&1; then
    # Left from a lab made with a QDevice and provisioned again without one.
    systemctl disable -q --now corosync-qdevice
  fi
  echo "$NAME provisioned"
}

# Sourced (to check what it renders), it only defines the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
