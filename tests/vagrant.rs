//! The Vagrantfile, up (`make test-vm`, not `make test`): Debian's vagrant
//! and vagrant-libvirt bring up the project's Vagrantfile on a box made by
//! `corodrill lab box` (the VM lab's image, no download): two corosync
//! nodes and the QDevice VM `qnetd`. corodrill then drills that cluster
//! through the inventory the Vagrantfile writes: a cut the QDevice's vote
//! decides, and a node powered off and on through the vagrant and the
//! libvirt drivers.
//!
//! libvirtd is the test's own: started in a network namespace of the test
//! (so its bridges, dnsmasq and VMs are all there, none in the host's), in a
//! mount namespace where /run, /etc/libvirt, /var/lib/libvirt and
//! /var/log/libvirt are the test's directories; its socket is in the test's
//! directory, which vagrant and virsh are pointed at. Vagrant, virsh and
//! corodrill run inside that network namespace to reach the VMs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{corodrill, require_root, scratch, text, unique_name, CORODRILL};
use corodrill::lab::host;

/// The test's libvirtd and Vagrant project; everything goes when the test
/// ends, passed or failed: the VMs (vagrant destroy, then every process
/// left in the namespace), the namespace, the directory.
struct VagrantLab {
    netns: String,
    dir: PathBuf,
    libvirtd: Option<Child>,
}

impl VagrantLab {
    fn project(&self) -> PathBuf {
        self.dir.join("project")
    }

    fn uri(&self) -> String {
        format!(
            "qemu:///system?socket={}",
            self.dir.join("run/libvirt-sock").display()
        )
    }

    fn inventory(&self) -> PathBuf {
        self.project().join(".vagrant/corodrill/inventory.toml")
    }

    /// `program args` inside the test's network namespace, with the
    /// environment the Vagrantfile and the drivers read.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, program])
            .args(args)
            .current_dir(self.project())
            .env("VAGRANT_HOME", self.dir.join("vagrant-home"))
            .env("VAGRANT_CWD", self.project())
            .env("CORODRILL_LIBVIRT_URI", self.uri())
            .env("CORODRILL_BOX", "corodrill/debian12")
            .env("CORODRILL_NODES", "2")
            .env("CORODRILL_QDEVICE", "1")
            // Corosync's default 3 s token, as `pvecm create` writes: TCG
            // guests stall for a second now and then (the VM lab's note).
            .env("CORODRILL_PROFILE", "proxmox")
            .env(
                "CORODRILL_AGENT",
                Path::new(CORODRILL).with_file_name("corodrill-agent"),
            );
        cmd
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    fn run_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} {}: {}",
            args.join(" "),
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `program args`, its output passed on line by line as it comes, each
    /// line stamped with the seconds since it started: where a long
    /// `vagrant up` spends its time, in the test's own output.
    fn run_streamed(&self, program: &str, args: &[&str]) {
        use std::io::{BufRead, BufReader};
        let started = Instant::now();
        let mut child = self
            .command(program, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // A progress bar redraws itself on one line: its last state.
            let line = line.rsplit("\x1b[K").next().unwrap_or_default();
            eprintln!("[{:6.1}s] {line}", started.elapsed().as_secs_f64());
        }
        let status = child.wait().expect("wait for the child");
        assert!(status.success(), "{program} {}: {status}", args.join(" "));
    }

    fn virsh(&self, args: &[&str]) -> String {
        let uri = self.uri();
        let mut all = vec!["-c", &uri];
        all.extend_from_slice(args);
        self.run_ok("virsh", &all)
    }

    /// Both nodes quorate with both as members and the QDevice's vote, as
    /// corosync-quorumtool on each node says (over ssh, with the ssh_config
    /// the Vagrantfile wrote for it, as the inventory's agents are reached).
    fn whole(&self) -> bool {
        (1..=2).all(|i| {
            let node = format!("pve{i}");
            let config = self.project().join(".vagrant/corodrill/ssh").join(&node);
            let out = self.run(
                "ssh",
                &[
                    "-F",
                    &config.display().to_string(),
                    "-T",
                    &node,
                    "sudo corosync-quorumtool -s",
                ],
            );
            let s = String::from_utf8_lossy(&out.stdout);
            s.contains("Quorate:          Yes")
                && common::members(&s).len() == 2
                && common::field(&s, "Total votes") == "3"
        })
    }

    fn wait_whole(&self, timeout: Duration, what: &str) {
        let started = Instant::now();
        let deadline = started + timeout;
        while !self.whole() {
            assert!(
                Instant::now() < deadline,
                "{what}: the Vagrant lab is not whole after {timeout:?}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
        eprintln!("{what}: whole in {:.0} s", started.elapsed().as_secs_f64());
    }
}

impl Drop for VagrantLab {
    fn drop(&mut self) {
        if self.project().join(".vagrant").exists() {
            let _ = self.run("vagrant", &["destroy", "-f"]);
        }
        if let Some(mut child) = self.libvirtd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Whatever outlived its libvirtd (a VM, a dnsmasq) dies with the
        // namespace's processes, found as `lab down` finds a lab's.
        let pids = host::processes_in(&[&host::netns_path(&self.netns)]);
        host::kill_and_wait(&pids, Duration::from_secs(10));
        let _ = host::delete_netns(&self.netns);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A tool the test needs, with the package it comes from: missing, the
/// test fails saying so (CI installs them: scripts/install-deps --vm).
fn require_tools() {
    for (program, package) in [
        ("vagrant", "vagrant"),
        ("libvirtd", "libvirt-daemon"),
        ("virsh", "libvirt-clients"),
        ("dnsmasq", "dnsmasq-base"),
        ("qemu-system-x86_64", "qemu-system-x86"),
    ] {
        assert!(
            host::which(program).is_some(),
            "{program} is missing: apt-get install {package} (scripts/install-deps --vm)"
        );
    }
    let plugins = Command::new("vagrant")
        .args(["plugin", "list"])
        .output()
        .expect("cannot run vagrant");
    assert!(
        String::from_utf8_lossy(&plugins.stdout).contains("vagrant-libvirt"),
        "vagrant has no vagrant-libvirt plugin: apt-get install vagrant-libvirt: {}",
        text(&plugins)
    );
}

/// libvirtd's configuration: its socket in the test's directory, no
/// authentication on it (root only: 0700 directory), QEMU run as root with
/// no security driver, cgroups or namespaces of its own (the test's mount
/// namespace has no systemd, machined or cgroup hierarchy to give it).
fn write_libvirt_config(dir: &Path) {
    let etc = dir.join("etc");
    std::fs::write(
        etc.join("libvirtd.conf"),
        format!(
            "unix_sock_dir = \"{run}\"\nunix_sock_rw_perms = \"0700\"\n\
             auth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\n\
             log_outputs = \"3:file:{log}\"\n",
            run = dir.join("run").display(),
            log = dir.join("log/libvirtd.log").display()
        ),
    )
    .unwrap();
    std::fs::write(
        etc.join("qemu.conf"),
        "user = \"root\"\ngroup = \"root\"\ndynamic_ownership = 0\nremember_owner = 0\n\
         security_driver = \"none\"\nstdio_handler = \"file\"\n\
         cgroup_controllers = [ ]\nnamespaces = [ ]\n",
    )
    .unwrap();
}

fn start_libvirtd(lab: &mut VagrantLab) {
    let d = lab.dir.display().to_string();
    let script = format!(
        "set -e; mount -t tmpfs tmpfs /run; \
         mount --bind {d}/lib /var/lib/libvirt; mount --bind {d}/etc /etc/libvirt; \
         mount --bind {d}/log /var/log/libvirt; exec libvirtd -f /etc/libvirt/libvirtd.conf"
    );
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.netns])
        .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(lab.dir.join("log/libvirtd.stderr"))
                .expect("libvirtd's stderr file"),
        )
        .spawn()
        .expect("cannot start libvirtd");
    lab.libvirtd = Some(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let uri = lab.uri();
    loop {
        let ok = Command::new("virsh")
            .args(["-c", &uri, "version"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "libvirtd did not answer on {uri} within 30 s: {}",
            std::fs::read_to_string(lab.dir.join("log/libvirtd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A drill run through the Vagrant inventory (or another): its JSON log.
fn run_drill(
    lab: &VagrantLab,
    inventory: &Path,
    drill: &Path,
    out: &Path,
    name: &str,
) -> (Output, String) {
    let json = out.join(format!("{name}.jsonl"));
    let history = out.join("history.sqlite");
    let started = Instant::now();
    let run = lab.run(
        CORODRILL,
        &[
            "run",
            "--inventory",
            &inventory.display().to_string(),
            "--json",
            &json.display().to_string(),
            "--history",
            &history.display().to_string(),
            &drill.display().to_string(),
        ],
    );
    eprintln!(
        "{name}: the drill ran in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let log = std::fs::read_to_string(&json).unwrap_or_default();
    (run, log)
}

/// The events of a drill's JSON log.
fn events_of(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Whether `node` was seen quorate with exactly `members` during the drill
/// (after its start, when the cluster was whole).
fn seen_quorate_with(events: &[serde_json::Value], node: &str, members: &[&str]) -> bool {
    events.iter().any(|e| {
        e["kind"] == "quorum"
            && e["node"] == node
            && e["t"].as_f64().is_some_and(|t| t > 0.0)
            && e["quorate"] == true
            && e["members"] == serde_json::json!(members)
    })
}

/// What a power-off drill must show whatever its windows (a TCG guest
/// boots in ~45 s): the drill ran to its verdicts, pve1 kept quorum alone
/// (pve2's power really went, and the QDevice's vote counted), the power
/// came back on through the driver and was rolled back clean, and no
/// split-brain.
fn check_power_drill(driver: &str, run: &Output, log: &str) {
    assert!(
        matches!(run.status.code(), Some(0 | 1)),
        "power-off through {driver}: the drill did not run to its verdicts: {}",
        text(run)
    );
    let events = events_of(log);
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "fault.applied" && e["node"] == "pve2"),
        "power-off through {driver}: no fault.applied for pve2: {}",
        text(run)
    );
    // The drill starts whole: a later view of pve1's without pve2 is the
    // power-off's (it may come before the driver returns and the fault is
    // logged applied: `vagrant halt` takes 13 s).
    assert!(
        seen_quorate_with(&events, "pve1", &["pve1"]),
        "power-off through {driver}: pve1 was never quorate alone after the power-off: {}",
        text(run)
    );
    let healed = events
        .iter()
        .find(|e| e["kind"] == "fault.healed" && e["node"] == "pve2")
        .unwrap_or_else(|| panic!("power-off through {driver}: no fault.healed: {}", text(run)));
    assert_eq!(healed["clean"], true, "{healed}");
    assert_eq!(
        healed["detail"],
        format!("powered on (power driver {driver})"),
        "{healed}"
    );
    let split_brain_passed = events
        .iter()
        .any(|e| e["kind"] == "expect.pass" && e["name"] == "no split-brain");
    assert!(
        split_brain_passed,
        "power-off through {driver}: {}",
        text(run)
    );
}

/// pve2 loses power while pve1 keeps quorum with the QDevice's vote.
const POWER_OFF_WITH_QDEVICE: &str = r#"name = "power-off-beside-a-qdevice"
description = "pve2 loses power; pve1 keeps quorum with the QDevice's vote; powered on, pve2 rejoins."
nodes = 2

[requires]
nodes = 2
qdevice = true

[[fault]]
id = "power"
kind = "power-off"
nodes = ["pve2"]
heal_after = "15s"

[[expect]]
name = "pve1 keeps quorum with the QDevice's vote"
after = "power"
nodes = ["pve1"]
quorate = true
members = ["pve1"]
within = "15s"
hold = "2s"

[[expect]]
name = "pve2 back after power-on"
after = "power.healed"
nodes = "all"
quorate = true
members = "all"
within = "90s"
hold = "2s"
"#;

#[test]
fn vagrantfile_up_with_a_qdevice_on_a_local_box_drilled_through_vagrant_and_libvirt() {
    require_root();
    require_tools();
    let name = unique_name();
    let dir = scratch(&format!("vagrant-{name}"));
    for sub in ["run", "etc", "lib", "log", "vagrant-home", "project"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let mut lab = VagrantLab {
        netns: format!("cdvg-{name}"),
        dir,
        libvirtd: None,
    };
    if let Err(e) = host::add_netns(&lab.netns) {
        panic!("{}: {e}", lab.netns);
    }
    write_libvirt_config(&lab.dir);
    start_libvirtd(&mut lab);

    // The box, from the VM lab's image (built here if not cached).
    let started = Instant::now();
    let box_path = lab.dir.join("corodrill-debian12.box");
    let made = corodrill(&["lab", "box", "--out", &box_path.display().to_string()]);
    assert!(made.status.success(), "lab box: {}", text(&made));
    eprintln!(
        "box written (image cached or built) in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    lab.run_ok(
        "vagrant",
        &[
            "box",
            "add",
            "--name",
            "corodrill/debian12",
            &box_path.display().to_string(),
        ],
    );

    // The project's own Vagrantfile and provisioners, in a copy of their
    // own (vagrant keeps its state beside the Vagrantfile).
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(repo.join("Vagrantfile"), lab.project().join("Vagrantfile")).unwrap();
    std::fs::create_dir_all(lab.project().join("vagrant")).unwrap();
    for script in ["provision-node.sh", "provision-qnetd.sh"] {
        std::fs::copy(
            repo.join("vagrant").join(script),
            lab.project().join("vagrant").join(script),
        )
        .unwrap();
    }
    let started = Instant::now();
    lab.run_streamed("vagrant", &["up", "--provider", "libvirt"]);
    eprintln!(
        "vagrant up: 2 nodes and a QDevice VM in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // Its networks are in the test's namespace, none in the host's.
    let host_links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let host_links = String::from_utf8_lossy(&host_links.stdout);
    assert!(
        !host_links.contains("virbr") && !host_links.contains("vnet"),
        "libvirt's bridges or taps in the host's own namespace: {host_links}"
    );
    lab.wait_whole(Duration::from_secs(180), "after vagrant up");
    assert!(
        lab.inventory().is_file(),
        "vagrant up wrote no inventory at {}",
        lab.inventory().display()
    );
    let status = lab.run(
        CORODRILL,
        &[
            "status",
            "--inventory",
            &lab.inventory().display().to_string(),
        ],
    );
    assert!(status.status.success(), "status: {}", text(&status));

    let out = lab.dir.join("reports");
    std::fs::create_dir_all(&out).unwrap();

    // The QDevice VM's vote, in a shipped drill: cut between the nodes,
    // qnetd gives its vote to pve1, which keeps quorum alone; pve2 loses it.
    let drill = repo.join("experiments/two-nodes-with-qdevice.toml");
    let (run, log) = run_drill(&lab, &lab.inventory(), &drill, &out, "qdevice");
    eprintln!("QDevice cut:\n{}", String::from_utf8_lossy(&run.stdout));
    assert!(
        matches!(run.status.code(), Some(0 | 1)),
        "two-nodes-with-qdevice did not run to its verdicts: {}",
        text(&run)
    );
    let events = events_of(&log);
    assert!(
        seen_quorate_with(&events, "pve1", &["pve1"]),
        "pve1 never kept quorum alone on the cut (the QDevice's vote): {}",
        text(&run)
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "quorum" && e["node"] == "pve2" && e["quorate"] == false),
        "pve2 never lost quorum on the cut: {}",
        text(&run)
    );
    lab.wait_whole(Duration::from_secs(180), "after the QDevice cut");

    let drill = lab.dir.join("power-off-beside-a-qdevice.toml");
    std::fs::write(&drill, POWER_OFF_WITH_QDEVICE).unwrap();

    // Through Vagrant: `vagrant halt --force`, `vagrant up --no-provision`.
    let (run, log) = run_drill(&lab, &lab.inventory(), &drill, &out, "vagrant");
    eprintln!("vagrant driver:\n{}", String::from_utf8_lossy(&run.stdout));
    check_power_drill("vagrant", &run, &log);
    lab.wait_whole(Duration::from_secs(180), "after the vagrant driver's drill");

    // Through libvirt: `virsh destroy`, `virsh start` of Vagrant's domains,
    // the same inventory but for the power lines.
    let domains = lab.virsh(&["list", "--name"]);
    assert!(domains.contains("project_pve2"), "{domains}");
    assert!(domains.contains("project_qnetd"), "{domains}");
    let vagrant_inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    let libvirt_inventory: String = vagrant_inventory
        .lines()
        .map(|l| match l.strip_prefix("power = ") {
            Some(_) => {
                let node = l
                    .split("machine = \"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .expect("machine in the power line");
                format!(
                    "power = {{ driver = \"libvirt\", domain = \"project_{node}\", uri = \"{}\" }}",
                    lab.uri()
                )
            }
            None => l.to_owned(),
        })
        .map(|l| l + "\n")
        .collect();
    let libvirt_path = lab.dir.join("libvirt.toml");
    std::fs::write(&libvirt_path, libvirt_inventory).unwrap();
    let (run, log) = run_drill(&lab, &libvirt_path, &drill, &out, "libvirt");
    eprintln!("libvirt driver:\n{}", String::from_utf8_lossy(&run.stdout));
    check_power_drill("libvirt", &run, &log);
    lab.wait_whole(Duration::from_secs(180), "after the libvirt driver's drill");

    let started = Instant::now();
    lab.run_ok("vagrant", &["destroy", "-f"]);
    let left = lab.virsh(&["list", "--all", "--name"]);
    assert!(
        left.trim().is_empty(),
        "domains left after vagrant destroy: {left}"
    );
    eprintln!(
        "vagrant destroy in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
