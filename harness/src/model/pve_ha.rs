//! Proxmox VE HA's own timing (pve-ha-manager and watchdog-mux), each
//! constant cited from its source: what the fencing foresight and the
//! predicted reaction of HA services are computed from. Its own module so
//! that both read it without importing each other.

use std::time::Duration;

/// How long watchdog-mux waits for a client (pve-ha-lrm, pve-ha-crm) to
/// feed it before it stops feeding the watchdog device: watchdog-mux.c,
/// `CLIENT_WATCHDOG_TIMEOUT` (60), checked once a second.
pub const CLIENT_WATCHDOG_TIMEOUT: Duration = Duration::from_secs(60);

/// The watchdog device's own timeout, which watchdog-mux sets with
/// `WDIOC_SETTIMEOUT`: watchdog-mux.c, `watchdog_timeout = 10`.
pub const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a pmxcfs lock lives without renewal; the HA manager can take a
/// lost node's agent lock, and so treats it as fenced, only after it:
/// Env/PVE2.pm, `get_pve_lock`, `$retry_timeout = 120` ("hardcoded lock
/// lifetime limit from pmxcfs"); NodeStatus.pm `fence_node` takes it.
pub const LOCK_LIFETIME: Duration = Duration::from_secs(120);

/// How long the HA manager waits for a node out of the quorate partition
/// before it puts the node's services in the `fence` state:
/// NodeStatus.pm, `$fence_delay = 60`. Shorter than the lock's lifetime,
/// so the lock decides when services are recovered.
pub const FENCE_DELAY: Duration = Duration::from_secs(60);

/// One round of pve-ha-lrm and pve-ha-crm (LRM.pm and CRM.pm, `work`, `my
/// $max_time = 10`): the LRM renews its lock and feeds its watchdog once a
/// round, so the last feed may come this long before quorum is lost.
pub const HA_ROUND: Duration = Duration::from_secs(10);

/// Detection (token + consensus) from which a mere re-formation of the
/// membership is near the client timeout: while corosync re-forms, pmxcfs
/// cannot renew locks, the last feed may be a round ([`HA_ROUND`]) older,
/// and pmxcfs resynchronises for a few seconds after the new membership.
/// 60 s - 10 s - 5 s.
pub const NEAR_CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
