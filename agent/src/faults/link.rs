//! `link-down`: the interface that carries one corosync link goes down, and
//! up again on heal. (Addresses stay configured while an interface is down.)

use std::net::IpAddr;

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
        let text =
            run_output(crate::node::command("ip").args(["-o", "link", "show", "dev", interface]))?;
        if !link_flags(&text).contains(&"UP") {
            down.push(interface.as_str());
        }
    }
    if down.is_empty() {
        Ok(format!("{} up", interfaces.join(", ")))
    } else {
        Err(format!("still down: {}", down.join(", ")))
    }
}

/// The flags of `ip -o link show`: `2: ring0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> ...`.
fn link_flags(text: &str) -> Vec<&str> {
    text.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(flags, _)| flags.split(',').collect())
        .unwrap_or_default()
}

/// The interface that holds `address`.
pub fn interface_of(address: IpAddr) -> Result<String, String> {
    let text = run_output(crate::node::command("ip").args(["-o", "addr", "show"]))?;
    parse_interface_of(&text, address)
        .ok_or_else(|| format!("no interface of this node has address {address}"))
}

fn parse_interface_of(text: &str, address: IpAddr) -> Option<String> {
    // "3: ring0    inet 198.18.0.1/24 scope global ring0\       valid_lft ..."
    text.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let addr = words.get(3)?.split('/').next()?.parse::<IpAddr>().ok()?;
        (addr == address).then(|| words[1].to_owned())
    })
}

/// The interface the kernel would use to reach `address`.
pub fn interface_of_route_to(address: IpAddr) -> Option<String> {
    let text =
        run_output(crate::node::command("ip").args(["-o", "route", "get", &address.to_string()]))
            .ok()?;
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "dev")
        .and_then(|i| words.get(i + 1))
        .map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_output() {
        let addrs = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                     3: ring1    inet 198.18.1.2/24 scope global ring1\\       valid_lft forever\n";
        assert_eq!(
            parse_interface_of(addrs, "198.18.1.2".parse().unwrap()).as_deref(),
            Some("ring1")
        );
        assert_eq!(
            parse_interface_of(addrs, "198.18.1.3".parse().unwrap()),
            None
        );
        let link =
            "2: ring0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP";
        assert!(link_flags(link).contains(&"UP"));
        assert!(!link_flags("2: ring0@if5: <BROADCAST,MULTICAST> mtu 1500").contains(&"UP"));
    }
}
