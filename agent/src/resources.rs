//! Resource watching: where this node's Pacemaker says each watched
//! resource is active, read from `crm_mon --output-as=xml` every interval
//! and sent as an event when it changes, stamped with the agent's
//! monotonic time of the read. A node whose Pacemaker does not answer
//! (stopped with corosync, powered off) reports that it cannot say.

use std::collections::BTreeMap;
use std::time::Duration;

use corodrill_protocol::EventBody;

use crate::server::Out;

/// Runs forever on its own thread.
pub fn watch(out: &Out, resources: Vec<String>, interval: Duration) {
    let mut last: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    loop {
        let read_at = (crate::server::mono_ns(), crate::server::utc_us());
        let view = crm_mon().and_then(|xml| parse_crm_mon(&xml));
        for r in &resources {
            let active_on = view
                .as_ref()
                .ok()
                .map(|v| v.get(r).cloned().unwrap_or_default());
            if last.get(r) != Some(&active_on) {
                last.insert(r.clone(), active_on.clone());
                out.event_at(
                    read_at.0,
                    read_at.1,
                    EventBody::Resource {
                        resource: r.clone(),
                        active_on,
                    },
                );
            }
        }
        std::thread::sleep(interval);
    }
}

fn crm_mon() -> Result<String, String> {
    let out = crate::node::command("crm_mon")
        .args(["--one-shot", "--inactive", "--output-as=xml"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("crm_mon: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "crm_mon: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Resource id -> nodes it is active on, from crm_mon's XML: every
/// `<resource id=.. active="true">` with its `<node name=..>` children
/// (clones and groups nest resources; each is listed by its own id).
pub fn parse_crm_mon(xml: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("crm_mon's XML: {e}"))?;
    let mut view: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Some(resources) = doc.descendants().find(|n| n.has_tag_name("resources")) else {
        return Err("crm_mon's XML has no <resources>".into());
    };
    for r in resources
        .descendants()
        .filter(|n| n.has_tag_name("resource"))
    {
        let Some(id) = r.attribute("id") else {
            continue;
        };
        // A clone instance's id carries ":N"; the resource is what operators name.
        let id = id.split(':').next().unwrap_or(id).to_owned();
        let entry = view.entry(id).or_default();
        if r.attribute("active") == Some("true") {
            for n in r.children().filter(|n| n.has_tag_name("node")) {
                if let Some(name) = n.attribute("name") {
                    if !entry.iter().any(|e| e == name) {
                        entry.push(name.to_owned());
                    }
                }
            }
        }
    }
    for nodes in view.values_mut() {
        nodes.sort();
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abridged from crm_mon 2.1.5 --output-as=xml on the Pacemaker lab.
    const STARTED: &str = r#"<pacemaker-result api-version="2.25" request="crm_mon --one-shot --inactive --output-as=xml">
  <summary><stack type="corosync"/><current_dc present="true" version="2.1.5" name="pve2" id="2" with_quorum="true"/></summary>
  <nodes>
    <node name="pve1" id="1" online="true" standby="false" resources_running="1" type="member"/>
    <node name="pve2" id="2" online="true" standby="false" resources_running="0" type="member"/>
  </nodes>
  <resources>
    <resource id="svc" resource_agent="ocf:pacemaker:Dummy" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
      <node name="pve1" id="1" cached="true"/>
    </resource>
    <resource id="idle" resource_agent="ocf:pacemaker:Dummy" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="0"/>
    <clone id="web-clone" multi_state="false" unique="false" managed="true" disabled="false" failed="false" failure_ignored="false">
      <resource id="web" resource_agent="ocf:pacemaker:Dummy" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="pve1" id="1" cached="true"/>
      </resource>
      <resource id="web" resource_agent="ocf:pacemaker:Dummy" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1">
        <node name="pve2" id="2" cached="true"/>
      </resource>
    </clone>
  </resources>
</pacemaker-result>"#;

    #[test]
    fn where_each_resource_is_active() {
        let view = parse_crm_mon(STARTED).unwrap();
        assert_eq!(view["svc"], ["pve1"]);
        assert!(view["idle"].is_empty());
        assert_eq!(view["web"], ["pve1", "pve2"]);
        assert!(parse_crm_mon("<pacemaker-result/>").is_err());
        assert!(parse_crm_mon("not xml").is_err());
    }
}
