//! End-to-end tests of the agent on a real lab: every fault kind applied and
//! healed, with quorum observed changing as corosync's own tools say,
//! and nothing of corodrill left afterwards; leases, `kill -9` of the agent,
//! `--rollback`. Each test function is one lab shape; its scenarios run in
//! order on that lab (faults on one cluster must not overlap).

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use corodrill::cluster::agent::AgentConn;
use corodrill_protocol::{Direction, Event, EventBody, Fault, Op, Outcome, StallSource};

const T: Duration = Duration::from_secs(30);

fn mono_now() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn apply(conn: &mut AgentConn, id: &str, fault: Fault, lease_ms: u64) -> Outcome {
    conn.request(
        Op::Apply {
            fault_id: id.into(),
            fault,
            lease_ms,
            allow_management_cut: false,
            drill: None,
            at_mono_ns: None,
        },
        T,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn apply_ok(conn: &mut AgentConn, id: &str, fault: Fault) {
    let outcome = apply(conn, id, fault, 60_000);
    assert!(
        matches!(outcome, Outcome::Ok { .. }),
        "{}: apply {id}: {outcome:?}",
        conn.node
    );
}

fn heal_clean(conn: &mut AgentConn, id: &str) {
    let outcome = conn
        .request(
            Op::Heal {
                fault_id: id.into(),
            },
            T,
        )
        .unwrap();
    let Outcome::Healed { reports, .. } = &outcome else {
        panic!("{}: heal {id}: {outcome:?}", conn.node)
    };
    assert_eq!(reports.len(), 1, "{outcome:?}");
    assert!(
        reports[0].clean,
        "{}: heal {id}: {:?}",
        conn.node, reports[0]
    );
}

fn watch(conn: &mut AgentConn) {
    assert!(matches!(
        conn.request(Op::Watch, T).unwrap(),
        Outcome::Ok { .. }
    ));
}

/// The first event (within `timeout`) that `pred` accepts.
fn wait_event(
    conn: &AgentConn,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&EventBody) -> bool,
) -> Event {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match conn.events().recv_timeout(left) {
            Ok(ev) if pred(&ev.body) => return ev,
            Ok(_) => continue,
            Err(_) => panic!("{}: no event {what} within {timeout:?}", conn.node),
        }
    }
}

fn quorum_is(quorate: bool, members: &[u32]) -> impl Fn(&EventBody) -> bool + '_ {
    move |b| match b {
        EventBody::Quorum {
            quorate: q,
            members: m,
            ..
        } => *q == quorate && m.iter().map(|m| m.node_id).collect::<Vec<_>>() == members,
        _ => false,
    }
}

/// Nothing of corodrill on this node: no nftables table, no tbf/netem
/// qdisc, every ring interface up, the clock file at +0s, corosync running
/// and not stopped.
fn assert_clean(lab: &TestLab, node: &str) {
    let ruleset = lab.tool(node, &["nft", "list", "ruleset"]);
    assert!(
        !ruleset.contains("corodrill"),
        "{node}: nftables left:\n{ruleset}"
    );
    let qdiscs = lab.tool(node, &["tc", "qdisc", "show"]);
    assert!(
        !qdiscs.contains("tbf") && !qdiscs.contains("netem"),
        "{node}: qdisc left:\n{qdiscs}"
    );
    let mangle = lab.tool(node, &["iptables-legacy", "-t", "mangle", "-S"]);
    assert!(
        !mangle.contains("CORODRILL"),
        "{node}: delay line left:\n{mangle}"
    );
    for (ring, up, state) in lab.rings(node) {
        assert!(up, "{node}: link down: {ring} ({state})");
    }
    let clock = std::fs::read_to_string(lab.dir().join(node).join("faketime")).unwrap();
    assert_eq!(clock.trim(), "+0s", "{node}: clock file");
    let corosync = lab.tool(
        node,
        &[
            "sh",
            "-c",
            "for p in $(pidof corosync); do cat /proc/$p/stat; done",
        ],
    );
    let mine: Vec<&str> = corosync.lines().collect();
    assert!(!mine.is_empty(), "{node}: corosync not running");
}

/// Average ping round trip from a node, in milliseconds.
fn avg_rtt_ms(lab: &TestLab, node: &str, to: &str) -> f64 {
    let out = lab.tool(node, &["ping", "-q", "-c", "10", "-i", "0.05", to]);
    // "rtt min/avg/max/mdev = 77.413/81.156/85.160/2.828 ms"
    out.lines()
        .find_map(|l| l.split_once(" = ")?.1.split('/').nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no rtt in ping output: {out}"))
}

fn agent_pid_in(lab: &TestLab, node: &str) -> i32 {
    let out = lab.tool(node, &["sh", "-c", "pidof corodrill-agent"]);
    // pidof sees every pid namespace-sharing process: keep the one in this netns.
    let netns = std::fs::metadata(format!("/run/netns/{}", lab.netns(node))).unwrap();
    use std::os::unix::fs::MetadataExt;
    out.split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .find(|p| {
            std::fs::metadata(format!("/proc/{p}/ns/net")).is_ok_and(|m| m.ino() == netns.ino())
                // The agent's guard runs the same binary.
                && !std::fs::read(format!("/proc/{p}/cmdline"))
                    .unwrap_or_default()
                    .split(|b| *b == 0)
                    .any(|a| a == b"--guard")
        })
        .expect("no agent process on the node")
}

/// The guard watching agent `agent`.
fn guard_pid_of(agent: i32) -> i32 {
    let wanted = format!("--guard\0{agent}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&wanted))
        })
        .unwrap_or_else(|| panic!("no guard for agent {agent}"))
}

#[test]
fn network_faults_on_three_nodes_two_links() {
    let lab = TestLab::up(&["--links", "2"]);
    let mut pve1 = lab.agent("pve1");
    let mut pve3 = lab.agent("pve3");

    // The hello says who and what.
    assert_eq!(pve3.hello.node, "pve3");
    assert_eq!(pve3.hello.node_id, Some(3));
    assert!(pve3.hello.capabilities.corosync_version.is_some());
    assert!(pve3.hello.recovered.is_empty());

    // The first quorum event agrees with corosync-quorumtool on the node.
    watch(&mut pve1);
    watch(&mut pve3);
    let first = wait_event(&pve3, T, "first quorum", quorum_is(true, &[1, 2, 3]));
    let status = lab.tool("pve3", &["corosync-quorumtool", "-s"]);
    let EventBody::Quorum {
        ring_id,
        total_votes,
        expected_votes,
        ..
    } = &first.body
    else {
        unreachable!()
    };
    assert_eq!(ring_id, field(&status, "Ring ID"), "{status}");
    assert_eq!(
        total_votes.unwrap().to_string(),
        field(&status, "Total votes")
    );
    assert_eq!(
        expected_votes.unwrap().to_string(),
        field(&status, "Expected votes")
    );
    wait_event(&pve1, T, "first quorum", quorum_is(true, &[1, 2, 3]));
    // knet's links, from corosync's stats: two peers, two links each, all up.
    wait_event(
        &pve3,
        T,
        "links",
        |b| matches!(b, EventBody::Links { links } if links.len() == 4 && links.iter().all(|l| l.connected)),
    );

    // A timed apply takes effect at its instant, not when it arrives (the
    // namespaces share one monotonic clock with this test); one timed
    // beyond what the protocol allows is refused before anything is done.
    let harmless = || Fault::Cut {
        peers: vec![ip("198.18.9.9")],
        direction: Direction::Both,
    };
    let timed = |conn: &mut AgentConn, id: &str, ahead: Duration| {
        let at = mono_now() + ahead.as_nanos() as u64;
        let outcome = conn
            .request(
                Op::Apply {
                    fault_id: id.into(),
                    fault: harmless(),
                    lease_ms: 60_000,
                    allow_management_cut: false,
                    drill: None,
                    at_mono_ns: Some(at),
                },
                T,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        (at, outcome)
    };
    // A cut is prepared before its instant and armed at it: while the agent
    // waits, its chains are in the table and their set is still empty.
    let (at, outcome, before) = std::thread::scope(|s| {
        let applying = s.spawn(|| timed(&mut pve1, "timed", Duration::from_millis(1500)));
        let mut before = None;
        while !applying.is_finished() {
            let table = lab.tool("pve1", &["nft", "list", "table", "inet", "corodrill"]);
            if table.contains("hook input") {
                // Taken after the listing: all of it was before then.
                before = Some((mono_now(), table));
                break;
            }
        }
        let (at, outcome) = applying.join().unwrap();
        (at, outcome, before)
    });
    let (listed, table) = before.expect("the cut's chains never showed before the agent replied");
    assert!(
        listed < at,
        "the prepared cut showed only {} ms after its instant",
        (listed - at) / 1_000_000
    );
    assert!(
        !table.contains("198.18.9.9"),
        "the cut was armed before its instant:\n{table}"
    );
    match outcome {
        Outcome::Ok { mono_ns } => assert!(
            mono_ns >= at,
            "took effect {} ms before its instant",
            (at - mono_ns) / 1_000_000
        ),
        other => panic!("timed apply: {other:?}"),
    }
    heal_clean(&mut pve1, "timed");
    let (_, outcome) = timed(&mut pve1, "too-far", Duration::from_secs(60));
    assert!(
        matches!(&outcome, Outcome::Error { message } if message.contains("ahead")),
        "{outcome:?}"
    );
    assert_clean(&lab, "pve1");

    // Isolate pve3 on both links: pve3 loses quorum (~3.5 s with token 1000),
    // the majority keeps it; heal and pve3 rejoins (~2 s).
    let peers = ["198.18.0.1", "198.18.0.2", "198.18.1.1", "198.18.1.2"]
        .map(ip)
        .to_vec();
    apply_ok(
        &mut pve3,
        "isolate",
        Fault::Cut {
            peers: peers.clone(),
            direction: Direction::Both,
        },
    );
    wait_event(
        &pve3,
        Duration::from_secs(10),
        "pve3 inquorate",
        quorum_is(false, &[3]),
    );
    wait_event(
        &pve1,
        Duration::from_secs(10),
        "pve1 with 1,2",
        quorum_is(true, &[1, 2]),
    );
    assert_eq!(
        field(&lab.tool("pve3", &["corosync-quorumtool", "-s"]), "Quorate"),
        "No"
    );
    heal_clean(&mut pve3, "isolate");
    wait_event(
        &pve3,
        Duration::from_secs(15),
        "pve3 back",
        quorum_is(true, &[1, 2, 3]),
    );
    assert_clean(&lab, "pve3");
    lab.wait_whole(3);

    // One-way: pve3 cannot send; it still loses quorum, then heals.
    apply_ok(
        &mut pve3,
        "oneway",
        Fault::Cut {
            peers: peers.clone(),
            direction: Direction::Outbound,
        },
    );
    wait_event(
        &pve1,
        Duration::from_secs(10),
        "pve1 with 1,2",
        quorum_is(true, &[1, 2]),
    );
    heal_clean(&mut pve3, "oneway");
    wait_event(
        &pve1,
        Duration::from_secs(15),
        "pve1 whole",
        quorum_is(true, &[1, 2, 3]),
    );
    assert_clean(&lab, "pve3");
    lab.wait_whole(3);

    // Link 0 down on pve1: knet marks it down on the peers, quorum stays.
    apply_ok(
        &mut pve1,
        "ring0",
        Fault::LinkDown {
            address: ip("198.18.0.1"),
        },
    );
    wait_event(&pve1, Duration::from_secs(15), "link 0 to pve2 down", |b| {
        matches!(b, EventBody::Links { links }
            if links.iter().any(|l| l.node_id == 2 && l.link == 0 && !l.connected)
            && links.iter().any(|l| l.node_id == 2 && l.link == 1 && l.connected))
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while !lab
        .tool("pve2", &["corosync-cfgtool", "-s"])
        .contains("nodeid:          1:\tdisconnected")
    {
        assert!(
            Instant::now() < deadline,
            "pve2 never saw link 0 to pve1 go down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        field(&lab.tool("pve1", &["corosync-quorumtool", "-s"]), "Quorate"),
        "Yes"
    );
    heal_clean(&mut pve1, "ring0");
    assert_clean(&lab, "pve1");

    // Degrade: loss with nftables, rate with tbf; delay needs netem, which
    // this kernel lacks: refused, nothing applied.
    let mut pve2 = lab.agent("pve2");
    apply_ok(
        &mut pve2,
        "slow",
        Fault::Degrade {
            peers: vec![ip("198.18.0.1"), ip("198.18.0.3")],
            addresses: vec![ip("198.18.0.2")],
            loss_percent: Some(30),
            delay_ms: None,
            jitter_ms: None,
            rate: Some("1mbit".into()),
        },
    );
    assert!(lab
        .tool("pve2", &["nft", "list", "ruleset"])
        .contains("numgen random mod 100 < 30"));
    assert!(lab
        .tool("pve2", &["tc", "qdisc", "show", "dev", "ring0"])
        .contains("tbf"));
    heal_clean(&mut pve2, "slow");
    assert_clean(&lab, "pve2");
    // Delay with jitter: netem where the kernel has it, else the user-space
    // delay line; either way ping shows it, and corosync stays quorate.
    apply_ok(
        &mut pve2,
        "delay",
        Fault::Degrade {
            peers: vec![ip("198.18.0.1")],
            addresses: vec![ip("198.18.0.2")],
            loss_percent: None,
            delay_ms: Some(80),
            jitter_ms: Some(5),
            rate: None,
        },
    );
    let rtt = avg_rtt_ms(&lab, "pve2", "198.18.0.1");
    assert!(
        (74.0..=100.0).contains(&rtt),
        "ping with 80 ms added: {rtt} ms"
    );
    assert_eq!(
        field(&lab.tool("pve1", &["corosync-quorumtool", "-s"]), "Quorate"),
        "Yes"
    );
    heal_clean(&mut pve2, "delay");
    let rtt = avg_rtt_ms(&lab, "pve2", "198.18.0.1");
    assert!(rtt < 10.0, "ping after the heal: {rtt} ms");
    assert_clean(&lab, "pve2");
    lab.wait_whole(3);

    // A lease that is not renewed runs out, and the agent rolls back alone.
    let started = Instant::now();
    assert!(matches!(
        apply(
            &mut pve3,
            "leased",
            Fault::Cut {
                peers: peers.clone(),
                direction: Direction::Both
            },
            1500
        ),
        Outcome::Ok { .. }
    ));
    let ev = wait_event(&pve3, Duration::from_millis(2500), "lease expiry", |b| {
        matches!(b, EventBody::LeaseExpired { .. })
    });
    let EventBody::LeaseExpired { reports } = &ev.body else {
        unreachable!()
    };
    assert!(reports.iter().all(|r| r.clean), "{reports:?}");
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert_clean(&lab, "pve3");

    // An agent that hangs (SIGSTOP: its lease thread cannot run) leaves the
    // kernel to heal the cut: the set elements expire a little past the lease.
    assert!(matches!(
        apply(
            &mut pve3,
            "hung",
            Fault::Cut {
                peers: peers.clone(),
                direction: Direction::Both
            },
            1000
        ),
        Outcome::Ok { .. }
    ));
    let agent = nix::unistd::Pid::from_raw(agent_pid_in(&lab, "pve3"));
    nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let stopped = Instant::now();
    let expired = |lab: &TestLab| {
        let ruleset = lab.tool("pve3", &["nft", "list", "ruleset"]);
        !ruleset.contains("198.18.")
    };
    while !expired(&lab) {
        assert!(
            stopped.elapsed() < Duration::from_secs(6),
            "the kernel never expired the cut of a hung agent"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGCONT).unwrap();
    wait_event(
        &pve3,
        Duration::from_secs(5),
        "lease expiry after the hang",
        |b| matches!(b, EventBody::LeaseExpired { .. }),
    );
    assert_clean(&lab, "pve3");
    lab.wait_whole(3);

    // A renewed lease holds.
    assert!(matches!(
        apply(
            &mut pve3,
            "renewed",
            Fault::Cut {
                peers: peers.clone(),
                direction: Direction::Both
            },
            1000
        ),
        Outcome::Ok { .. }
    ));
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(300));
        assert!(matches!(
            pve3.request(Op::Renew { lease_ms: 1000 }, T).unwrap(),
            Outcome::Ok { .. }
        ));
    }
    assert!(lab
        .tool("pve3", &["nft", "list", "ruleset"])
        .contains("corodrill"));
    heal_clean(&mut pve3, "renewed");
    assert_clean(&lab, "pve3");
    lab.wait_whole(3);

    // Over ssh, the agent refuses to cut the controller's own address
    // (SSH_CONNECTION) unless the experiment allows it.
    let connect = lab
        .inventory()
        .nodes
        .iter()
        .find(|n| n.name == "pve3")
        .map(|n| {
            format!(
                "SSH_CONNECTION='198.18.0.1 40000 198.18.0.3 22' {}",
                n.connect
            )
        })
        .unwrap();
    // One agent owns a node at a time: this one takes pve3 while the
    // direct connection is closed.
    drop(pve3);
    let mut over_ssh = AgentConn::connect("pve3", &connect, T).unwrap();
    assert!(over_ssh.owns(), "{:?}", over_ssh.hello.role);
    let cut_controller = Fault::Cut {
        peers: vec![ip("198.18.0.1")],
        direction: Direction::Both,
    };
    let Outcome::Error { message } = apply(&mut over_ssh, "mgmt", cut_controller.clone(), 10_000)
    else {
        panic!("cut the controller's own connection")
    };
    assert!(message.contains("controller's own connection"), "{message}");
    assert_clean(&lab, "pve3");
    let allowed = over_ssh
        .request(
            Op::Apply {
                fault_id: "mgmt".into(),
                fault: cut_controller,
                lease_ms: 10_000,
                allow_management_cut: true,
                drill: None,
                at_mono_ns: None,
            },
            T,
        )
        .unwrap();
    assert!(matches!(allowed, Outcome::Ok { .. }), "{allowed:?}");
    heal_clean(&mut over_ssh, "mgmt");
    drop(over_ssh);
    assert_clean(&lab, "pve3");
    lab.wait_whole(3);
    let mut pve3 = lab.agent("pve3");
    assert!(pve3.owns(), "{:?}", pve3.hello.role);

    // kill -9 of the agent mid-cut: the kernel drops the owned table at once.
    apply_ok(
        &mut pve3,
        "orphan",
        Fault::Cut {
            peers,
            direction: Direction::Both,
        },
    );
    let agent = agent_pid_in(&lab, "pve3");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    while lab
        .tool("pve3", &["nft", "list", "ruleset"])
        .contains("corodrill")
    {
        assert!(Instant::now() < deadline, "the cut outlived its agent");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(pve3);
    assert_clean(&lab, "pve3");
    drop((pve1, pve2));
    lab.down();
    assert_nothing_left(&lab.name);
}

#[test]
fn process_clock_and_command_faults() {
    let lab = TestLab::up(&[]);
    let mut pve1 = lab.agent("pve1");
    let mut pve2 = lab.agent("pve2");
    watch(&mut pve1);
    watch(&mut pve2);
    wait_event(&pve1, T, "first quorum", quorum_is(true, &[1, 2, 3]));

    // SIGKILL and clean stop: pve2 leaves (its own stream says corosync is
    // down), heal starts it and it rejoins.
    for (id, fault) in [("kill", Fault::Kill), ("stop", Fault::Stop)] {
        apply_ok(&mut pve2, id, fault);
        wait_event(&pve2, Duration::from_secs(5), "corosync down", |b| {
            matches!(b, EventBody::CorosyncDown { .. })
        });
        wait_event(
            &pve1,
            Duration::from_secs(10),
            "pve2 gone",
            quorum_is(true, &[1, 3]),
        );
        heal_clean(&mut pve2, id);
        wait_event(
            &pve1,
            Duration::from_secs(15),
            "pve2 back",
            quorum_is(true, &[1, 2, 3]),
        );
        wait_event(
            &pve2,
            Duration::from_secs(15),
            "pve2's own view",
            quorum_is(true, &[1, 2, 3]),
        );
        assert_clean(&lab, "pve2");
    }

    // Pause longer than the token: the others drop pve2; SIGCONT brings it back.
    apply_ok(&mut pve2, "pause", Fault::Pause);
    wait_event(
        &pve1,
        Duration::from_secs(10),
        "paused pve2 dropped",
        quorum_is(true, &[1, 3]),
    );
    heal_clean(&mut pve2, "pause");
    // The machine's stall as corosync saw it: its own "not scheduled"
    // warning, read from its log, on pve2's stream.
    let stall = wait_event(
        &pve2,
        Duration::from_secs(5),
        "corosync's not-scheduled warning",
        |b| matches!(b, EventBody::Stall { source: StallSource::Corosync, late_ms, .. } if *late_ms >= 1000),
    );
    let EventBody::Stall { detail, .. } = &stall.body else {
        unreachable!()
    };
    assert!(detail.contains("not scheduled"), "{detail}");
    wait_event(
        &pve1,
        Duration::from_secs(15),
        "pve2 back",
        quorum_is(true, &[1, 2, 3]),
    );
    assert_clean(&lab, "pve2");
    lab.wait_whole(3);

    // The agent's own timer: an agent held still for 600 ms says it woke late.
    let agent = nix::unistd::Pid::from_raw(agent_pid_in(&lab, "pve2"));
    nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGSTOP).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGCONT).unwrap();
    wait_event(
        &pve2,
        Duration::from_secs(5),
        "the agent's late timer",
        |b| matches!(b, EventBody::Stall { source: StallSource::Agent, late_ms, .. } if *late_ms >= 500),
    );

    // Clock skew of five minutes moves the node's clock file, not the host's;
    // quorum is unaffected.
    let mut pve3 = lab.agent("pve3");
    let host_before = std::time::SystemTime::now();
    apply_ok(
        &mut pve3,
        "skew",
        Fault::ClockSkew {
            offset_ms: 300_000,
            strobe_ms: None,
        },
    );
    let clock_file = lab.dir().join("pve3/faketime");
    assert_eq!(
        std::fs::read_to_string(&clock_file).unwrap().trim(),
        "+300s"
    );
    let node_date = lab.tool("pve3", &["sh", "-c", "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 FAKETIME_TIMESTAMP_FILE=$0 FAKETIME_NO_CACHE=1 date +%s", clock_file.to_str().unwrap()]);
    let host_now = host_before
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let skew = node_date.trim().parse::<i64>().unwrap() - host_now;
    assert!(
        (295..=310).contains(&skew),
        "node clock is {skew} s off, not 300"
    );
    assert_eq!(
        field(&lab.tool("pve3", &["corosync-quorumtool", "-s"]), "Quorate"),
        "Yes"
    );
    heal_clean(&mut pve3, "skew");
    assert_clean(&lab, "pve3");

    // An operator command and its undo.
    let marker = lab.dir().join("pve3/command-ran");
    let m = marker.display();
    apply_ok(
        &mut pve3,
        "cmd",
        Fault::Command {
            run: format!("touch {m}"),
            undo: Some(format!("rm {m}")),
            timeout_ms: None,
        },
    );
    assert!(marker.exists());
    heal_clean(&mut pve3, "cmd");
    assert!(!marker.exists());

    // An undo that fails (votequorum refusing `-e 2` while the nodes have
    // not merged yet) leaves the fault applied: the agent keeps it, and
    // the next heal, here the drill's last one, runs the undo again.
    let refused = lab.dir().join("pve3/undo-refused");
    let r = refused.display();
    apply_ok(
        &mut pve3,
        "refused-undo",
        Fault::Command {
            run: format!("touch {m}"),
            undo: Some(format!("test -e {r} || {{ touch {r}; exit 1; }}; rm {m}")),
            timeout_ms: None,
        },
    );
    let first = pve3
        .request(
            Op::Heal {
                fault_id: "refused-undo".into(),
            },
            T,
        )
        .unwrap();
    assert!(
        matches!(&first, Outcome::Healed { reports, .. } if reports.len() == 1 && !reports[0].clean),
        "{first:?}"
    );
    assert!(marker.exists());
    let all = pve3.request(Op::HealAll, T).unwrap();
    assert!(
        matches!(&all, Outcome::Healed { reports, .. }
            if reports.len() == 1 && reports[0].fault_id == "refused-undo" && reports[0].clean),
        "{all:?}"
    );
    assert!(!marker.exists());
    let _ = std::fs::remove_file(&refused);

    // An owner whose controller is gone (here: its ssh session hung up)
    // rolls back on its way out, and says so in its lock file; an agent
    // started meanwhile (the next drill's) waits for it and then owns the
    // node, instead of observing a node that is about to be free.
    apply_ok(
        &mut pve3,
        "slow-undo",
        Fault::Command {
            run: format!("touch {m}"),
            undo: Some(format!("sleep 2; rm {m}")),
            timeout_ms: None,
        },
    );
    let leaving = agent_pid_in(&lab, "pve3");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(leaving),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let lock_file = lab.dir().join("pve3/agent/owner.lock");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&lock_file)
        .unwrap_or_default()
        .contains(&format!("{leaving} closing"))
    {
        assert!(Instant::now() < deadline, "the leaving owner never said so");
        std::thread::sleep(Duration::from_millis(5));
    }
    let next = lab.agent("pve3");
    assert!(next.owns(), "{:?}", next.hello.role);
    assert!(
        !marker.exists(),
        "the next owner came before the undo ended"
    );
    drop(pve3);
    let mut pve3 = next;

    // A slow command holds nothing: while it runs, renewals are answered
    // at once; past its timeout it is killed and the fault refused.
    let slow = pve3.handle();
    let running = std::thread::spawn(move || {
        slow.request(
            Op::Apply {
                fault_id: "slow".into(),
                fault: Fault::Command {
                    run: "sleep 30".into(),
                    undo: None,
                    timeout_ms: Some(3000),
                },
                lease_ms: 60_000,
                allow_management_cut: false,
                drill: None,
                at_mono_ns: None,
            },
            T,
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    let renewed = pve3.request(Op::Renew { lease_ms: 60_000 }, T).unwrap();
    assert!(matches!(renewed, Outcome::Ok { .. }), "{renewed:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "a renewal waited {:?} behind a running command",
        asked.elapsed()
    );
    let Outcome::Error { message } = running.join().unwrap().unwrap() else {
        panic!("a command past its timeout was applied")
    };
    assert!(message.contains("did not finish within"), "{message}");
    assert!(
        lab.tool("pve3", &["sh", "-c", "pgrep -f '^sleep 30$' || true"])
            .trim()
            .is_empty(),
        "the timed-out command is still running"
    );

    // Bad input: a clear error, nothing applied.
    for (fault, expect) in [
        (
            Fault::LinkDown {
                address: ip("198.18.7.7"),
            },
            "no interface",
        ),
        (
            Fault::ClockSkew {
                offset_ms: 0,
                strobe_ms: None,
            },
            "offset",
        ),
        (
            Fault::Command {
                run: "exit 3".into(),
                undo: None,
                timeout_ms: None,
            },
            "exit status: 3",
        ),
    ] {
        let Outcome::Error { message } = apply(&mut pve3, "bad", fault, 10_000) else {
            panic!("applied: {expect}")
        };
        assert!(message.contains(expect), "{message}");
    }
    assert_clean(&lab, "pve3");
    lab.wait_whole(3);

    // kill -9 of the agent mid-fault of every other kind, then
    // `corodrill-agent --rollback` leaves nothing.
    apply_ok(
        &mut pve3,
        "down",
        Fault::LinkDown {
            address: ip("198.18.0.3"),
        },
    );
    apply_ok(
        &mut pve3,
        "rate",
        Fault::Degrade {
            peers: vec![],
            addresses: vec![ip("198.18.0.3")],
            loss_percent: None,
            delay_ms: None,
            jitter_ms: None,
            rate: Some("1mbit".into()),
        },
    );
    apply_ok(
        &mut pve3,
        "skew",
        Fault::ClockSkew {
            offset_ms: -90_000,
            strobe_ms: Some(500),
        },
    );
    apply_ok(
        &mut pve3,
        "delay",
        Fault::Degrade {
            peers: vec![ip("198.18.0.1")],
            addresses: vec![ip("198.18.0.3")],
            loss_percent: None,
            delay_ms: Some(50),
            jitter_ms: None,
            rate: None,
        },
    );
    apply_ok(&mut pve3, "pause", Fault::Pause);
    // Its guard first (the chaos test covers the guard's own rollback): the
    // journal is then all that is left to roll the faults back from, as
    // after a reboot or with the guard OOM-killed.
    let agent = agent_pid_in(&lab, "pve3");
    let guard = guard_pid_of(agent);
    for pid in [guard, agent] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    drop(pve3);
    let out = corodrill(&[
        "lab",
        "exec",
        "--name",
        &lab.name,
        "pve3",
        "--",
        env!("CARGO_BIN_EXE_corodrill")
            .replace("/corodrill", "/corodrill-agent")
            .as_str(),
        "--rollback",
        "--lab-node",
        lab.dir().join("pve3").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("rolled back").count(), 5, "{stdout}");
    assert_clean(&lab, "pve3");
    lab.wait_whole(3);

    // A second rollback finds nothing.
    let again = corodrill(&[
        "lab",
        "exec",
        "--name",
        &lab.name,
        "pve3",
        "--",
        env!("CARGO_BIN_EXE_corodrill")
            .replace("/corodrill", "/corodrill-agent")
            .as_str(),
        "--rollback",
        "--lab-node",
        lab.dir().join("pve3").to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing to roll back"),
        "{}",
        text(&again)
    );

    drop((pve1, pve2));
    // A fault on a node whose corosync is down is refused.
    let mut pve2 = lab.agent("pve2");
    apply_ok(&mut pve2, "kill", Fault::Kill);
    let Outcome::Error { message } = apply(&mut pve2, "kill2", Fault::Kill, 10_000) else {
        panic!("killed twice")
    };
    assert!(message.contains("not running"), "{message}");
    heal_clean(&mut pve2, "kill");
    drop(pve2);
    lab.down();
    assert_nothing_left(&lab.name);
}
