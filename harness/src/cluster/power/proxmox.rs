//! `driver = "proxmox"`: the Proxmox VE API, called over HTTPS by the
//! controller itself (ureq, rustls; path segments percent-encoded; TLS
//! verified against the inventory's `cacert` or the system's CAs), the
//! token in the `Authorization` header.

use std::time::Duration;

use super::{PowerDriver, PowerState, SEGMENT};

/// A VM of an outer Proxmox VE host, through its API with an API token
/// (`USER@REALM!TOKENID=SECRET`) in the `Authorization` header of the
/// controller's own HTTPS request: no tool, so no command line or config
/// file holds it. TLS is verified, against the inventory's CA if it names
/// one, the system's CAs otherwise.
pub(super) struct ProxmoxPower {
    pub(super) agent: ureq::Agent,
    /// `API/api2/json/nodes/NODE/qemu/VMID/status`, each path segment
    /// percent-encoded.
    pub(super) vm_url: String,
    pub(super) token: String,
}

/// The VM's status URL under the API's base (`https://host:8006`).
pub(super) fn vm_status_url(api: &str, node: &str, vmid: u32) -> String {
    format!(
        "{}/api2/json/nodes/{}/qemu/{vmid}/status",
        api.trim_end_matches('/'),
        percent_encoding::utf8_percent_encode(node, SEGMENT)
    )
}

impl ProxmoxPower {
    pub(super) fn new(
        api: &str,
        node: &str,
        vmid: u32,
        token: String,
        cacert: Option<&str>,
        timeout: Duration,
    ) -> Result<ProxmoxPower, String> {
        use ureq::tls::{RootCerts, TlsConfig};
        let roots = match cacert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("cacert {path}: {e}"))?;
                let certs = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("cacert {path}: {e}"))?;
                if certs.is_empty() {
                    return Err(format!("cacert {path}: no PEM certificate in it"));
                }
                RootCerts::new_with_certs(&certs)
            }
            None => RootCerts::PlatformVerifier,
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // The API's error answers carry a message: read them, not
            // ureq's bare status error.
            .http_status_as_error(false)
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build()
            .new_agent();
        Ok(ProxmoxPower {
            agent,
            vm_url: vm_status_url(api, node, vmid),
            token,
        })
    }

    /// `POST` or `GET` `vm_url/action`; the API's JSON answer.
    pub(super) fn call(&self, method: &str, action: &str) -> Result<serde_json::Value, String> {
        let url = format!("{}/{action}", self.vm_url);
        let auth = format!("PVEAPIToken={}", self.token);
        let answer = match method {
            "POST" => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
            _ => self.agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut answer = answer.map_err(|e| format!("{method} {url}: {e}"))?;
        let status = answer.status();
        let body = answer
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
        if !status.is_success() {
            return Err(format!("{method} {url}: HTTP {status}: {}", body.trim()));
        }
        serde_json::from_str(&body).map_err(|e| format!("the API answered {:?}: {e}", body.trim()))
    }
}

impl PowerDriver for ProxmoxPower {
    fn driver(&self) -> &'static str {
        "proxmox"
    }
    fn off(&self) -> Result<(), String> {
        // `stop` is the API's pulled plug; `shutdown` would ask the guest.
        self.call("POST", "stop").map(drop)
    }
    fn on(&self) -> Result<(), String> {
        self.call("POST", "start").map(drop)
    }
    fn status(&self) -> Result<PowerState, String> {
        let answer = self.call("GET", "current")?;
        match answer["data"]["status"].as_str() {
            Some("running") => Ok(PowerState::On),
            Some("stopped") => Ok(PowerState::Off),
            _ => Err(format!("no VM status in the API's answer {answer}")),
        }
    }
}
