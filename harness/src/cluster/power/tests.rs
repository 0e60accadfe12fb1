//! The power drivers against fake tools and a fake API: no VM, no BMC.

//! Drivers whose tools cannot run here (no Vagrant, libvirt, BMC or outer
//! Proxmox VE host) are driven against stand-ins of their command-line
//! tools: shell scripts that record what they were asked and keep a
//! power state, answering as the real tool does. `lab` and `command`
//! are tested on a real lab (tests/drills.rs).
use super::proxmox::vm_status_url;
use super::*;
use std::collections::BTreeMap;
use std::process::Command;

struct StandIn {
    dir: PathBuf,
}

impl StandIn {
    /// A stand-in tool named `name` that starts in state `state`.
    fn new(name: &str, state: &str, body: &str) -> StandIn {
        let dir = std::env::temp_dir().join(format!(
            "corodrill-power-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("state"), format!("{state}\n")).unwrap();
        let script = format!(
            "#!/bin/sh\n[ -n \"$STANDIN_PROBE\" ] && exit 0\nd=$(dirname \"$0\")\necho \"$*\" >> \"$d/argv\"\npwd >> \"$d/cwd\"\n\
             echo \"IPMI_PASSWORD=$IPMI_PASSWORD\" >> \"$d/env\"\n{body}\n"
        );
        let tool = dir.join(name);
        std::fs::write(&tool, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Another test thread forking at the moment the script was
        // written holds its fd until that child execs: "text file
        // busy" for a moment. Wait it out before a driver runs it.
        for _ in 0..200 {
            match Command::new(&tool).env("STANDIN_PROBE", "1").status() {
                Err(e) if e.raw_os_error() == Some(26) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => break,
            }
        }
        StandIn { dir }
    }
    fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn node(power: Power) -> InventoryNode {
    InventoryNode {
        name: "pve3".into(),
        connect: "false".into(),
        links: BTreeMap::new(),
        power,
    }
}

fn secrets(var: &str) -> Option<String> {
    (var == "BMC_PASSWORD" || var == "PVE_TOKEN").then(|| match var {
        "BMC_PASSWORD" => "s3cret-bmc".to_owned(),
        _ => "drill@pve!ci=0000-secret".to_owned(),
    })
}

fn tools(stand_in: &StandIn, name: &str) -> Tools {
    let mut tools = Tools {
        timeout: Duration::from_secs(10),
        ..Tools::default()
    };
    let path = stand_in.tool(name);
    match name {
        "vagrant" => tools.vagrant = path,
        "virsh" => tools.virsh = path,
        _ => tools.ipmitool = path,
    }
    tools
}

/// Off, status until off, on, status until on: what a power-off fault
/// and its heal do.
fn cycle(driver: &dyn PowerDriver) {
    assert_eq!(driver.status().unwrap(), PowerState::On);
    switch(
        "pve3",
        driver,
        PowerState::Off,
        Duration::from_secs(5),
        &|_| {},
    )
    .unwrap();
    assert_eq!(driver.status().unwrap(), PowerState::Off);
    switch(
        "pve3",
        driver,
        PowerState::On,
        Duration::from_secs(5),
        &|_| {},
    )
    .unwrap();
    assert_eq!(driver.status().unwrap(), PowerState::On);
}

#[test]
fn vagrant_halts_and_ups_the_machine_in_its_project() {
    let s = StandIn::new(
        "vagrant",
        "running",
        r#"case "$1" in
  halt) echo poweroff > "$d/state" ;;
  up) echo running > "$d/state" ;;
  status) echo "1764000000,$3,state,$(cat "$d/state")" ;;
esac"#,
    );
    let project = std::env::temp_dir();
    let n = node(Power::Vagrant {
        machine: "node3".into(),
        dir: Some(project.display().to_string()),
    });
    let d = driver_for(&n, &tools(&s, "vagrant"), &secrets).unwrap();
    cycle(d.as_ref());
    let argv = s.read("argv");
    assert!(argv.contains("halt --force node3\n"), "{argv}");
    assert!(argv.contains("up --no-provision node3\n"), "{argv}");
    assert!(argv.contains("status --machine-readable node3\n"), "{argv}");
    let cwd = s.read("cwd");
    assert!(
        cwd.lines()
            .all(|l| Path::new(l) == project.canonicalize().unwrap()),
        "{cwd}"
    );
}

#[test]
fn libvirt_destroys_and_starts_the_domain() {
    let s = StandIn::new(
        "virsh",
        "running",
        r#"[ "$1" = -c ] && shift 2
case "$1" in
  destroy) echo "shut off" > "$d/state"; echo "Domain '$2' destroyed" ;;
  start) echo running > "$d/state"; echo "Domain '$2' started" ;;
  domstate) cat "$d/state"; echo ;;
esac"#,
    );
    let n = node(Power::Libvirt {
        domain: "lab-node3".into(),
        uri: Some("qemu:///system".into()),
    });
    cycle(
        driver_for(&n, &tools(&s, "virsh"), &secrets)
            .unwrap()
            .as_ref(),
    );
    let argv = s.read("argv");
    assert!(
        argv.contains("-c qemu:///system destroy lab-node3"),
        "{argv}"
    );
    assert!(argv.contains("-c qemu:///system start lab-node3"), "{argv}");
}

#[test]
fn ipmi_password_travels_in_the_environment_only() {
    let s = StandIn::new(
        "ipmitool",
        "on",
        r#"for last; do :; done
case "$last" in
  off) echo off > "$d/state"; echo "Chassis Power Control: Down/Off" ;;
  on) echo on > "$d/state"; echo "Chassis Power Control: Up/On" ;;
  status) echo "Chassis Power is $(cat "$d/state")" ;;
esac"#,
    );
    let n = node(Power::Ipmi {
        host: "10.0.1.13".into(),
        user: "admin".into(),
        password_env: "BMC_PASSWORD".into(),
    });
    cycle(
        driver_for(&n, &tools(&s, "ipmitool"), &secrets)
            .unwrap()
            .as_ref(),
    );
    let argv = s.read("argv");
    assert!(
        argv.contains("-I lanplus -H 10.0.1.13 -U admin -E chassis power off"),
        "{argv}"
    );
    assert!(
        !argv.contains("s3cret"),
        "the password leaked onto argv: {argv}"
    );
    assert!(s
        .read("env")
        .lines()
        .all(|l| l == "IPMI_PASSWORD=s3cret-bmc"));
}

/// One request as the stand-in API server read it off the socket.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    /// As on the request line: still percent-encoded.
    path: String,
    headers: Vec<(String, String)>,
}

/// An outer Proxmox VE host's API, in this process: a thread on a
/// 127.0.0.1 port that keeps a VM's state, answers `status/stop`,
/// `status/start` and `status/current` as the API does, and records
/// every request. Anything else is a 501.
struct StandInApi {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl StandInApi {
    fn start() -> StandInApi {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut running = true;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut words = line.split_whitespace();
                let method = words.next().unwrap_or_default().to_owned();
                let path = words.next().unwrap_or_default().to_owned();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                log.lock().unwrap().push(Seen {
                    method: method.clone(),
                    path: path.clone(),
                    headers,
                });
                let (code, body) = match (method.as_str(), path.rsplit('/').next()) {
                    ("POST", Some("stop")) => {
                        running = false;
                        (200, r#"{"data":"UPID:outer:stop"}"#.to_owned())
                    }
                    ("POST", Some("start")) => {
                        running = true;
                        (200, r#"{"data":"UPID:outer:start"}"#.to_owned())
                    }
                    ("GET", Some("current")) => (
                        200,
                        format!(
                            r#"{{"data":{{"status":"{}","vmid":103}}}}"#,
                            if running { "running" } else { "stopped" }
                        ),
                    ),
                    _ => (501, r#"{"data":null,"errors":"no such call"}"#.to_owned()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        StandInApi { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn proxmox(api: &str, pve_node: &str, cacert: Option<&str>) -> InventoryNode {
    node(Power::Proxmox {
        api: api.into(),
        node: pve_node.into(),
        vmid: 103,
        token_env: "PVE_TOKEN".into(),
        cacert: cacert.map(Into::into),
    })
}

#[test]
fn proxmox_calls_the_vm_status_api_with_the_token_in_its_header() {
    let api = StandInApi::start();
    let n = proxmox(&format!("{}/", api.url), "outer", None);
    cycle(
        driver_for(&n, &Tools::default(), &secrets)
            .unwrap()
            .as_ref(),
    );
    let seen = api.seen();
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    let vm = "/api2/json/nodes/outer/qemu/103/status";
    assert_eq!(calls[0], ("GET", &*format!("{vm}/current")));
    assert!(
        calls.contains(&("POST", &*format!("{vm}/stop"))),
        "{calls:?}"
    );
    assert!(
        calls.contains(&("POST", &*format!("{vm}/start"))),
        "{calls:?}"
    );
    for s in &seen {
        let auth: Vec<&str> = s
            .headers
            .iter()
            .filter(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(auth, ["PVEAPIToken=drill@pve!ci=0000-secret"], "{s:?}");
    }
}

#[test]
fn a_node_name_stays_one_path_segment() {
    let api = StandInApi::start();
    let odd = "pve 3/../x?y#z\r\nX-Injected: 1 %2F é..";
    let n = proxmox(&api.url, odd, None);
    let d = driver_for(&n, &Tools::default(), &secrets).unwrap();
    assert_eq!(d.status().unwrap(), PowerState::On);
    let [seen] = &api.seen()[..] else {
        panic!("one request: {:?}", api.seen())
    };
    assert_eq!(
        seen.path,
        "/api2/json/nodes/pve%203%2F%2E%2E%2Fx%3Fy%23z%0D%0AX-Injected%3A%201%20%252F%20%C3%A9%2E%2E/qemu/103/status/current"
    );
    assert!(
        seen.headers.iter().all(|(k, _)| k != "x-injected"),
        "{seen:?}"
    );
    assert_eq!(
        vm_status_url("https://h:8006", "..", 1),
        "https://h:8006/api2/json/nodes/%2E%2E/qemu/1/status"
    );
}

#[test]
fn the_api_s_error_answer_is_the_error() {
    let api = StandInApi::start();
    let p = ProxmoxPower::new(
        &api.url,
        "outer",
        103,
        "t".into(),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    let err = p.call("GET", "bogus").unwrap_err();
    assert!(
        err.contains("HTTP 501") && err.contains("no such call"),
        "{err}"
    );
}

#[test]
fn a_cacert_that_cannot_be_read_is_refused_before_any_call() {
    let n = proxmox(
        "https://outer.example:8006",
        "outer",
        Some("/nonexistent/ca.pem"),
    );
    let err = driver_for(&n, &Tools::default(), &secrets).err().unwrap();
    let text = err.to_string();
    assert!(
        text.starts_with("node pve3: power driver proxmox: cacert /nonexistent/ca.pem"),
        "{text}"
    );
    let empty = std::env::temp_dir().join(format!("corodrill-empty-ca-{}", std::process::id()));
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let n = proxmox("https://outer.example:8006", "outer", empty.to_str());
    let err = driver_for(&n, &Tools::default(), &secrets).err().unwrap();
    let _ = std::fs::remove_file(&empty);
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}

#[test]
fn an_api_that_does_not_answer_is_an_error_at_the_timeout() {
    // Accepts the connection, never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _held = std::thread::spawn(move || {
        let conn = listener.accept();
        std::thread::sleep(Duration::from_secs(5));
        drop(conn);
    });
    let tools = Tools {
        timeout: Duration::from_millis(300),
        ..Tools::default()
    };
    let d = driver_for(&proxmox(&url, "outer", None), &tools, &secrets).unwrap();
    let started = Instant::now();
    assert!(d.status().is_err());
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn a_missing_credential_names_the_node_and_the_variable() {
    let n = node(Power::Ipmi {
        host: "10.0.1.13".into(),
        user: "admin".into(),
        password_env: "NOT_SET_ANYWHERE".into(),
    });
    let err = driver_for(&n, &Tools::default(), &secrets).err().unwrap();
    assert_eq!(
        err.to_string(),
        "node pve3: power driver ipmi: environment variable NOT_SET_ANYWHERE is not set"
    );
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn a_bmc_that_does_not_answer_is_an_error_naming_the_node() {
    let s = StandIn::new(
        "ipmitool",
        "on",
        "echo 'Error: Unable to establish IPMI v2 / RMCP+ session' >&2; exit 1",
    );
    let n = node(Power::Ipmi {
        host: "10.0.1.13".into(),
        user: "admin".into(),
        password_env: "BMC_PASSWORD".into(),
    });
    let d = driver_for(&n, &tools(&s, "ipmitool"), &secrets).unwrap();
    let err = switch(
        "pve3",
        d.as_ref(),
        PowerState::Off,
        Duration::from_secs(5),
        &|_| {},
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("node pve3: power driver ipmi: power off: "),
        "{text}"
    );
    assert!(text.contains("Unable to establish IPMI v2"), "{text}");
    assert_eq!(err.exit_code(), 3);
}

#[test]
fn a_tool_that_hangs_is_killed_at_its_timeout() {
    let s = StandIn::new("virsh", "running", "sleep 30");
    let n = node(Power::Libvirt {
        domain: "d".into(),
        uri: None,
    });
    let mut t = tools(&s, "virsh");
    t.timeout = Duration::from_millis(300);
    let d = driver_for(&n, &t, &secrets).unwrap();
    let started = Instant::now();
    let err = d.status().unwrap_err();
    assert!(err.contains("did not answer within 300ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn command_status_reads_its_last_word() {
    let n = |status: &str| {
        node(Power::Command {
            off: "true".into(),
            on: "true".into(),
            status: status.into(),
        })
    };
    let get = |status: &str| {
        driver_for(&n(status), &Tools::default(), &secrets)
            .unwrap()
            .status()
    };
    assert_eq!(get("echo Chassis Power is on").unwrap(), PowerState::On);
    assert_eq!(get("echo stopped").unwrap(), PowerState::Off);
    assert!(get("echo maybe")
        .unwrap_err()
        .contains("last word must be on or off"));
    assert!(get("exit 4").unwrap_err().contains("failed"));
}
