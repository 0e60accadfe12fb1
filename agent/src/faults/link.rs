//! `link-down`: the interface that carries one corosync link goes down, and
//! up again on heal. (Addresses stay configured while an interface is down.)

use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::Undo;
use crate::node::{run_ok, run_output};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkUndo {
    pub interfaces: Vec<String>,
}

pub fn apply(
    _ctx: &mut super::Ctx,
    address: IpAddr,
    journal: &mut dyn FnMut(&Undo) -> Result<(), String>,
) -> Result<Undo, String> {
    let interface = interface_of(address)?;
    let undo = Undo::LinkUp(LinkUndo {
        interfaces: vec![interface.clone()],
    });
    journal(&undo)?;
    set_link(&interface, false)?;
    Ok(undo)
}

pub fn rollback(undo: &LinkUndo) -> Result<String, String> {
    for interface in &undo.interfaces {
        set_link(interface, true)?;
    }
    check_up(&undo.interfaces)
}

pub fn set_link(interface: &str, up: bool) -> Result<(), String> {
    run_ok(crate::node::command("ip").args([
        "link",
        "set",
        "dev",
        interface,
        if up { "up" } else { "down" },
    ]))
}

/// Every interface named is administratively up again.
pub fn check_up(interfaces: &[String]) -> Result<String, String> {
    let mut down = Vec::new();
    for interface in interfaces {
        let links: Vec<IpLink> = ip_json(&["link", "show", "dev", interface])?;
        if !is_up(&links, interface) {
            down.push(interface.as_str());
        }
    }
    if down.is_empty() {
        Ok(format!("{} up", interfaces.join(", ")))
    } else {
        Err(format!("still down: {}", down.join(", ")))
    }
}

/// One interface as `ip -j link` and `ip -j addr` print it; only what is
/// read here.
#[derive(Debug, Deserialize)]
struct IpLink {
    ifname: String,
    #[serde(default)]
    flags: Vec<String>,
    /// Only in `ip -j addr`.
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
}

#[derive(Debug, Deserialize)]
struct IpAddrInfo {
    /// Kept as text: one odd entry must not make the whole list unreadable.
    local: Option<String>,
}

/// One route of `ip -j route get`.
#[derive(Debug, Deserialize)]
struct IpRoute {
    dev: Option<String>,
}

/// Runs `ip -j ARGS` and reads its JSON.
fn ip_json<T: DeserializeOwned>(args: &[&str]) -> Result<T, String> {
    let text = run_output(crate::node::command("ip").arg("-j").args(args))?;
    serde_json::from_str(&text).map_err(|e| format!("ip -j {}: {e}", args.join(" ")))
}

/// Whether `interface` is administratively up (the `UP` flag; `LOWER_UP`
/// is the carrier, which a veth loses when its peer goes down).
fn is_up(links: &[IpLink], interface: &str) -> bool {
    links
        .iter()
        .any(|l| l.ifname == interface && l.flags.iter().any(|f| f == "UP"))
}

/// The interface that holds `address`.
pub fn interface_of(address: IpAddr) -> Result<String, String> {
    let links: Vec<IpLink> = ip_json(&["addr", "show"])?;
    holder_of(&links, address)
        .ok_or_else(|| format!("no interface of this node has address {address}"))
}

fn holder_of(links: &[IpLink], address: IpAddr) -> Option<String> {
    links
        .iter()
        .find(|l| {
            l.addr_info.iter().any(|a| {
                a.local
                    .as_deref()
                    .and_then(|local| local.parse::<IpAddr>().ok())
                    == Some(address)
            })
        })
        .map(|l| l.ifname.clone())
}

/// The interface the kernel would use to reach `address`.
pub fn interface_of_route_to(address: IpAddr) -> Option<String> {
    let routes: Vec<IpRoute> = ip_json(&["route", "get", &address.to_string()]).ok()?;
    routes.into_iter().find_map(|r| r.dev)
}

#[cfg(test)]
mod tests {
    //! Samples of iproute2 6.1's `ip -j` (Debian 12): a lab node's
    //! (`ip -n NETNS -j ...`, a veth `ring0`) and a machine's own.
    use super::*;

    fn read<T: DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_interface_that_holds_an_address() {
        let node: Vec<IpLink> = read(include_str!("../../tests/ip/addr-node.json"));
        let at = |a: &str| holder_of(&node, a.parse().unwrap());
        assert_eq!(at("198.18.0.2").as_deref(), Some("ring0"));
        assert_eq!(at("127.0.0.1").as_deref(), Some("lo"));
        assert_eq!(at("::1").as_deref(), Some("lo"));
        assert_eq!(at("fe80::949a:8bff:fe66:a8c7").as_deref(), Some("ring0"));
        assert_eq!(at("198.18.0.1"), None, "the peer's address is not ours");
        let host: Vec<IpLink> = read(include_str!("../../tests/ip/addr-host.json"));
        let at = |a: &str| holder_of(&host, a.parse().unwrap());
        assert_eq!(at("192.0.2.2").as_deref(), Some("eth0"));
        assert_eq!(at("fd00::2").as_deref(), Some("eth0"));
        // Interfaces without addresses (ifb0) are read and skipped.
        assert_eq!(at("192.0.2.3"), None);
    }

    #[test]
    fn up_is_the_administrative_flag() {
        let ring0: Vec<IpLink> = read(include_str!("../../tests/ip/link-ring0.json"));
        assert!(is_up(&ring0, "ring0"));
        assert!(!is_up(&ring0, "ring1"), "not listed is not up");
        let host: Vec<IpLink> = read(include_str!("../../tests/ip/link-host.json"));
        assert!(is_up(&host, "eth0"));
        assert!(!is_up(&host, "ifb0"), "ifb0 is down");
        assert!(serde_json::from_str::<Vec<IpLink>>("2: ring0: <UP>").is_err());
    }

    #[test]
    fn the_route_s_device() {
        let routes: Vec<IpRoute> = read(include_str!("../../tests/ip/route-get.json"));
        assert_eq!(routes[0].dev.as_deref(), Some("ring0"));
    }
}
