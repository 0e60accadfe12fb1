//! Resource expectations and double-active windows.

use super::*;

pub(super) fn res(t: f64, node: &str, on: Option<&[&str]>) -> LogEvent {
    res_from(t, node, on, "poll")
}

/// A view whose time comes from `source` (`poll`, `pacemaker-alert`).
fn res_from(t: f64, node: &str, on: Option<&[&str]>, source: &str) -> LogEvent {
    ev(
        t,
        Some(node),
        LogBody::Resource {
            resource: "svc".into(),
            active_on: on.map(|v| v.iter().map(|s| s.to_string()).collect()),
            source: Some(source.into()),
        },
    )
}

const FAILOVER: &str = r#"
name = "failover"
nodes = 3
[[watch]]
resource = "svc"
interval = "100ms"
[[fault]]
id = "cut"
kind = "isolate"
nodes = ["pve1"]
[[expect]]
name = "svc moves"
after = "cut"
nodes = ["pve2", "pve3"]
resource = "svc"
moved = true
within = "10s"
[[expect]]
name = "svc on a survivor"
after = "cut"
nodes = ["pve2", "pve3"]
resource = "svc"
running_on = ["pve2", "pve3"]
within = "10s"
hold = "1s"
[[expect]]
name = "the cut node stops it"
after = "cut"
nodes = ["pve1"]
resource = "svc"
running = false
within = "10s"
"#;

/// svc runs on pve1; pve1 is cut at t=1; the survivors start it on pve2
/// at t=4.6 while pve1 still runs its copy until it loses quorum at t=5.
pub(super) fn failover_log() -> Vec<LogEvent> {
    let mut log = vec![ev(
        0.0,
        None,
        LogBody::DrillStart {
            experiment: "f".into(),
        },
    )];
    for n in ["pve1", "pve2", "pve3"] {
        log.push(q(0.0, n, true, &["pve1", "pve2", "pve3"], "1.4"));
        log.push(res(0.0, n, Some(&["pve1"])));
    }
    log.push(applied(1.0, "pve1", "cut"));
    log.push(q(4.5, "pve2", true, &["pve2", "pve3"], "2.8"));
    log.push(q(4.5, "pve3", true, &["pve2", "pve3"], "2.8"));
    log.push(res(4.6, "pve2", Some(&["pve2"])));
    log.push(res(4.7, "pve3", Some(&["pve2"])));
    log.push(q(5.0, "pve1", false, &["pve1"], "1.8"));
    log.push(res(5.1, "pve1", Some(&[])));
    log.push(healed(12.0, "pve1", "cut", true));
    log.push(ev(13.0, None, LogBody::DrillEnd {}));
    log
}

#[test]
fn failover_is_timed_from_the_views_of_the_named_nodes() {
    let e = parse(Path::new("f.toml"), FAILOVER).unwrap();
    let v = judge(&e, &nodes(), &failover_log());
    let by_name = |n: &str| v.iter().find(|x| x.name == n).unwrap();
    let moved = by_name("svc moves");
    assert!(moved.passed, "{moved:?}");
    assert!((moved.measured.unwrap() - 3.7).abs() < 1e-9, "{moved:?}");
    assert!(by_name("svc on a survivor").passed);
    let stopped = by_name("the cut node stops it");
    assert!(stopped.passed && (stopped.measured.unwrap() - 4.1).abs() < 1e-9);
    // No fencing: pve1 and pve2 both ran it from 4.6 to 5.1.
    let double = by_name("svc never active on two nodes");
    assert!(!double.passed);
    assert!(
        double
            .message
            .contains("on pve1 and pve2 at once from t=4.600s to t=5.100s (0.500s)"),
        "{}",
        double.message
    );
}

#[test]
fn a_double_active_window_can_be_expected_and_a_slow_failover_fails() {
    let text = FAILOVER.replace(
        "nodes = 3\n",
        "nodes = 3\n[invariants]\ndouble_active = \"expect\"\n",
    );
    let e = parse(Path::new("f.toml"), &text).unwrap();
    let v = judge(&e, &nodes(), &failover_log());
    let double = v
        .iter()
        .find(|x| x.name == "svc double-active window caught")
        .unwrap();
    assert!(double.passed && double.measured == Some(0.5), "{double:?}");
    // Read every 500 ms, a 0.5 s overlap is no evidence: one node's view
    // may be that much older than the other's.
    let coarse = text.replace("interval = \"100ms\"", "interval = \"500ms\"");
    let e = parse(Path::new("f.toml"), &coarse).unwrap();
    let v = judge(&e, &nodes(), &failover_log());
    let double = v
        .iter()
        .find(|x| x.name == "svc double-active window caught")
        .unwrap();
    assert!(!double.passed, "{double:?}");
    let slow = FAILOVER.replacen("within = \"10s\"", "within = \"1s\"", 1);
    let e = parse(Path::new("f.toml"), &slow).unwrap();
    let v = judge(&e, &nodes(), &failover_log());
    let moved = v.iter().find(|x| x.name == "svc moves").unwrap();
    assert!(!moved.passed);
    assert!(
        moved.message.contains("pve2 sees svc on pve1"),
        "{}",
        moved.message
    );
    assert!(
        moved
            .message
            .contains("it was true from t=4.700s, 3.700s after cut"),
        "{}",
        moved.message
    );
}

/// The failover log with every claim change timed by Pacemaker's alerts:
/// pve2 starts svc at `start`, pve1 stops it at 5.1, pve3's view (a poll)
/// follows.
fn alert_timed_log(start: f64) -> Vec<LogEvent> {
    let mut log: Vec<LogEvent> = failover_log()
        .into_iter()
        .filter(|e| !matches!(e.body, LogBody::Resource { .. }) || e.t == 0.0)
        .collect();
    log.push(res_from(start, "pve2", Some(&["pve2"]), "pacemaker-alert"));
    log.push(res_from(4.7, "pve3", Some(&["pve2"]), "poll"));
    log.push(res_from(5.1, "pve1", Some(&[]), "pacemaker-alert"));
    log
}

fn double_of(text: &str, log: &[LogEvent]) -> Verdict {
    let e = parse(Path::new("f.toml"), text).unwrap();
    judge(&e, &nodes(), log)
        .into_iter()
        .find(|x| x.name.contains("two nodes"))
        .unwrap()
}

#[test]
fn a_double_active_window_timed_by_alerts_counts_however_short() {
    let coarse = FAILOVER.replace("interval = \"100ms\"", "interval = \"500ms\"");
    // 30 ms, both ends Pacemaker's own record: it happened.
    let double = double_of(&coarse, &alert_timed_log(5.07));
    assert!(!double.passed, "{double:?}");
    assert!(
        double
            .message
            .contains("on pve1 and pve2 at once from t=5.070s to t=5.100s (0.030s)"),
        "{}",
        double.message
    );
    // The same 30 ms with one end read by a poll is no evidence.
    let mut polled = alert_timed_log(5.07);
    let last = polled.len() - 1;
    polled[last] = res_from(5.1, "pve1", Some(&[]), "poll");
    assert!(double_of(&coarse, &polled).passed);
    // An orderly move timed by alerts (stop, then start) is no window,
    // and a start after the stop never opens one.
    assert!(double_of(&coarse, &alert_timed_log(5.2)).passed);
}

#[test]
fn resource_expectations_are_checked_when_read() {
    let errs = |text: &str| {
        parse(Path::new("f.toml"), text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let unwatched = FAILOVER.replace("[[watch]]\nresource = \"svc\"\ninterval = \"100ms\"\n", "");
    assert!(
        errs(&unwatched).contains("resource \"svc\" is not watched"),
        "{}",
        errs(&unwatched)
    );
    let both = FAILOVER.replace("moved = true", "moved = true\nrunning = false");
    assert!(errs(&both).contains("exactly one of"), "{}", errs(&both));
    let with = |extra: &str| {
        FAILOVER.replace(
            "interval = \"100ms\"\n[[fault]]",
            &format!("interval = \"100ms\"\n{extra}\n[[fault]]"),
        )
    };
    assert_eq!(errs(&with("kind = \"pve-ha\"")), "");
    assert!(
        errs(&with("kind = \"crm\"")).contains("f.toml:7:1: watch: unknown variant `crm`, expected one of `pacemaker`, `pve-ha`, `probe`")
            && !errs(&with("kind = \"crm\"")).contains("not watched"),
        "{}",
        errs(&with("kind = \"crm\""))
    );
    assert!(
        errs(&with("kind = \"probe\"")).contains("needs command"),
        "{}",
        errs(&with("kind = \"probe\""))
    );
    assert_eq!(
        errs(&with(
            "kind = \"probe\"\ncommand = \"true\"\nnodes = [\"pve1\"]"
        )),
        ""
    );
    assert!(errs(&with("command = \"true\"")).contains("command is for kind = \"probe\" only"));
    assert!(errs(&with("nodes = [\"pve1\"]")).contains("nodes is for kind = \"probe\" only"));
}
