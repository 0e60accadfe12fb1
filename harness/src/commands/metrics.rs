//! Where `run --pushgateway URL` sends the run's metrics: a Prometheus
//! Pushgateway, for fleets whose Prometheus does not scrape the controller.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// The group the metrics replace: job `corodrill`, grouped by cluster, so
/// each cluster's latest run stands beside the others'.
pub fn group_url(base: &str, cluster: &str) -> String {
    format!(
        "{}/metrics/job/corodrill/cluster/{}",
        base.trim_end_matches('/'),
        utf8_percent_encode(cluster, NON_ALPHANUMERIC)
    )
}

/// PUTs the metrics text (Prometheus's text format) to the Pushgateway at
/// `base`: the cluster's group is replaced whole.
pub fn push(base: &str, cluster: &str, text: &str) -> Result<(), String> {
    let url = group_url(base, cluster);
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut answer = agent
        .put(&url)
        .header("Content-Type", "text/plain; version=0.0.4")
        .send(text)
        .map_err(|e| format!("{url}: {e}"))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let body = answer
        .body_mut()
        .with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default();
    Err(format!("{url}: {status}: {}", body.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn the_group_is_the_cluster_escaped() {
        assert_eq!(
            group_url("http://127.0.0.1:9091/", "pve a"),
            "http://127.0.0.1:9091/metrics/job/corodrill/cluster/pve%20a"
        );
    }

    /// A Pushgateway killed when the test ends.
    struct Gateway(std::process::Child);

    impl Drop for Gateway {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Debian's real Pushgateway on loopback (package
    /// prometheus-pushgateway, in scripts/install-deps): the pushed series
    /// come back labelled by job and cluster.
    #[test]
    fn a_real_pushgateway_takes_the_metrics() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-pushgateway (Debian package prometheus-pushgateway)");
        let _gateway = Gateway(child);
        let base = format!("http://127.0.0.1:{port}");
        let text = "# HELP corodrill_drill_passed Whether the drill passed.\n# TYPE corodrill_drill_passed gauge\ncorodrill_drill_passed{cluster=\"pve\",drill=\"isolate\"} 1\n";
        // It answers within a few seconds of starting.
        let mut pushed = Err(String::new());
        for _ in 0..50 {
            pushed = push(&base, "pve", text);
            if pushed.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        pushed.unwrap();
        let scraped = ureq::get(&format!("{base}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let line = scraped
            .lines()
            .find(|l| l.starts_with("corodrill_drill_passed{"))
            .unwrap_or_else(|| panic!("not pushed: {scraped}"));
        assert!(line.contains("cluster=\"pve\""), "{line}");
        assert!(line.contains("job=\"corodrill\""), "{line}");
        assert!(line.ends_with(" 1"), "{line}");
        // What it refuses is said, with its reason.
        let err = push(&base, "pve", "not { metrics\n").unwrap_err();
        assert!(err.contains("400"), "{err}");
    }
}
