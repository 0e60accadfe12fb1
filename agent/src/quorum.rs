//! The quorum watch: libquorum notifications (rust-corosync, model 1) for
//! quorate, ring id and members; libvotequorum for votes, expected votes,
//! quorum and the QDevice. Every change becomes one event stamped with the
//! agent's monotonic clock: at the time of corosync's own log line for the
//! view where there is one (`corosync_log`), else when the notification
//! arrived. When corosync stops answering the stream says so once, and the
//! watch reconnects when corosync is back.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::Duration;

use corodrill_protocol::{EventBody, LinkState, Member, TimeSource};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rust_corosync::{cmap, quorum, votequorum, DispatchFlags, NodeId, TrackFlags};

use crate::corosync_log::{self, Steps, Tail, Timed};
use crate::node::Node;
use crate::wire::Out;

/// How long a view's event is held back waiting for corosync's log line
/// for it (corosync writes its log from a thread of its own: the line may
/// land just after the notification). Past this, the notification's time.
const HOLD_NS: u64 = 150_000_000;

/// A session's first view is corosync's state when the watch connected: its
/// line, if there is one, was written before (a restarted corosync logs its
/// first membership ~20 ms before its IPC is up), so a short wait suffices
/// and a corosync that has been up for long costs little.
const FIRST_HOLD_NS: u64 = 10_000_000;

/// corosync's own record of each view, where this node has one to read.
struct Record {
    tail: Option<Tail>,
    faketime: Option<PathBuf>,
    steps: Steps,
}

impl Record {
    fn new(node: &Node) -> Record {
        Record {
            tail: crate::stall::corosync_log(node).map(Tail::open),
            faketime: node.faketime_file(),
            steps: Steps::default(),
        }
    }

    /// Reads corosync's clock offset and new log lines: on every wake of
    /// the watch, so that a clock step is seen and lines are read when
    /// written.
    fn sample(&mut self) -> Option<i64> {
        let offset = corosync_log::corosync_offset_us(self.faketime.as_deref());
        let now = crate::wire::mono_ns();
        self.steps.sample(now, crate::wire::utc_us(), offset);
        if let Some(tail) = &mut self.tail {
            tail.read(now);
        }
        offset
    }

    /// The time of the view seen at `seen`: its log line's, waiting for it
    /// up to `hold_ns` after `seen`, or the notification's.
    fn time(&mut self, seen: (u64, i64), view: (&str, &[u32], bool), hold_ns: u64) -> Timed {
        let (ring, members, quorate) = view;
        loop {
            let offset = self.sample();
            let steady = self.steps.steady_since(seen.0);
            let Some(tail) = &mut self.tail else { break };
            if let Some(line) = corosync_log::take_match(&mut tail.lines, ring, members, quorate) {
                return corosync_log::time_view(seen.0, seen.1, offset, steady, Some(&line));
            }
            if tail.hires == Some(false) || crate::wire::mono_ns() >= seen.0 + hold_ns {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        corosync_log::time_view(seen.0, seen.1, None, false, None)
    }
}

/// What the library callbacks saw, collected in the watching thread (the
/// callbacks are plain `fn`s, called from `dispatch` on this same thread).
enum Notice {
    Quorum {
        quorate: bool,
        ring: String,
        members: Vec<u32>,
    },
    Votes,
}

thread_local! {
    static NOTICES: RefCell<Vec<Notice>> = const { RefCell::new(Vec::new()) };
}

fn on_quorum(_: &quorum::Handle, quorate: bool, ring_id: quorum::RingId, members: Vec<NodeId>) {
    // corosync-quorumtool prints ring ids as hex "nodeid.seq".
    let ring = format!("{:x}.{:x}", u32::from(ring_id.nodeid), ring_id.seq);
    let members = members.into_iter().map(u32::from).collect();
    NOTICES.with(|n| {
        n.borrow_mut().push(Notice::Quorum {
            quorate,
            ring,
            members,
        })
    });
}

fn on_expected_votes(_: &votequorum::Handle, _context: u64, _expected: u32) {
    NOTICES.with(|n| n.borrow_mut().push(Notice::Votes));
}

/// Runs forever on its own thread.
pub fn watch(out: &Out, node: &Node) {
    let mut down_reported = false;
    // Followed across sessions: a restarted corosync's first lines are
    // written before the watch can reconnect.
    let mut record = Record::new(node);
    loop {
        if let Err(reason) = session(out, &mut down_reported, &mut record) {
            if !down_reported {
                out.event(EventBody::CorosyncDown { reason });
                down_reported = true;
            }
        }
        // A restarted corosync's first view is stamped when the watch
        // reconnects: retry often so that stamp stays close.
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn cs<T>(what: &str, r: rust_corosync::Result<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn session(out: &Out, down_reported: &mut bool, record: &mut Record) -> Result<(), String> {
    let model = quorum::ModelData::ModelV1(quorum::Model1Data {
        flags: quorum::Model1Flags::None,
        quorum_notification_fn: Some(on_quorum),
        nodelist_notification_fn: None,
    });
    let (qh, _) = cs("quorum_initialize", quorum::initialize(&model, 0))?;
    let vh = cs(
        "votequorum_initialize",
        votequorum::initialize(&votequorum::Callbacks {
            quorum_notification_fn: None,
            nodelist_notification_fn: None,
            expectedvotes_notification_fn: Some(on_expected_votes),
        }),
    )?;
    let names = node_names();
    let own_id = own_node_id();
    cs(
        "votequorum_trackstart",
        votequorum::trackstart(&vh, 0, TrackFlags::Changes),
    )?;
    // corosync sends the current state right after trackstart.
    cs(
        "quorum_trackstart",
        quorum::trackstart(&qh, TrackFlags::Changes),
    )?;
    // knet's view of each peer link, from corosync's stats map (no process
    // spawned): reported whenever it changes.
    let stats = cmap::initialize(cmap::Map::Stats).ok();
    let peers: Vec<u32> = names
        .keys()
        .copied()
        .filter(|id| Some(*id) != own_id)
        .collect();
    let mut last_links: Option<Vec<LinkState>> = None;
    let qfd = cs("quorum_fd_get", quorum::fd_get(&qh))?;
    let vfd = cs("votequorum_fd_get", votequorum::fd_get(&vh))?;
    *down_reported = false;
    let mut last: Option<(bool, String, Vec<u32>)> = None;
    let mut first_view = true;
    // The time of the last view this session sent: a view timed from its
    // line must not land before it (`corosync_log::after_last`); a CI run
    // of expected-votes-override judged pve1 inquorate for it.
    let mut last_view_ns: u64 = 0;
    loop {
        // SAFETY: both descriptors belong to the handles, alive for this loop.
        let (qb, vb) = unsafe { (BorrowedFd::borrow_raw(qfd), BorrowedFd::borrow_raw(vfd)) };
        let mut fds = [
            PollFd::new(qb, PollFlags::POLLIN),
            PollFd::new(vb, PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(250u16)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let hung = |fd: &PollFd| {
            fd.revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
            })
        };
        // Stamped when corosync's notification arrives, before the
        // votequorum queries that complete the event.
        let seen = (crate::wire::mono_ns(), crate::wire::utc_us());
        record.sample();
        if ready(&fds[0]) {
            cs("quorum_dispatch", quorum::dispatch(&qh, DispatchFlags::All))?;
        }
        if ready(&fds[1]) {
            cs(
                "votequorum_dispatch",
                votequorum::dispatch(&vh, DispatchFlags::All),
            )?;
        }
        if hung(&fds[0]) || hung(&fds[1]) {
            return Err("corosync closed the connection".into());
        }
        let notices = NOTICES.with(|n| std::mem::take(&mut *n.borrow_mut()));
        let mut changed = false;
        let mut new_view = false;
        for notice in notices {
            match notice {
                Notice::Quorum {
                    quorate,
                    ring,
                    members,
                } => {
                    last = Some((quorate, ring, members));
                    changed = true;
                    new_view = true;
                }
                Notice::Votes => changed = true,
            }
        }
        if let (true, Some((quorate, ring, members))) = (changed, &last) {
            // A change of votes alone has no line of its own.
            let timed = if new_view {
                let hold = if std::mem::replace(&mut first_view, false) {
                    FIRST_HOLD_NS
                } else {
                    HOLD_NS
                };
                record.time(seen, (ring.as_str(), members.as_slice(), *quorate), hold)
            } else {
                corosync_log::time_view(seen.0, seen.1, None, false, None)
            };
            let timed = corosync_log::after_last(timed, last_view_ns, seen.0, seen.1);
            last_view_ns = last_view_ns.max(timed.mono_ns);
            let source = if timed.from_log {
                TimeSource::CorosyncLog
            } else {
                TimeSource::Notification
            };
            out.event_at(
                timed.mono_ns,
                timed.utc_us,
                quorum_event(
                    &vh,
                    own_id,
                    (*quorate, ring.as_str(), members.as_slice()),
                    &names,
                    source,
                ),
            );
        }
        // Links after quorum: a view first, then how the node reaches its peers.
        if let Some(stats) = &stats {
            let links = read_links(stats, &peers);
            if last_links.as_ref() != Some(&links) {
                out.event_at(
                    seen.0,
                    seen.1,
                    EventBody::Links {
                        links: links.clone(),
                    },
                );
                last_links = Some(links);
            }
        }
    }
}

fn quorum_event(
    vh: &votequorum::Handle,
    own_id: Option<u32>,
    (quorate, ring, members): (bool, &str, &[u32]),
    names: &BTreeMap<u32, String>,
    source: TimeSource,
) -> EventBody {
    let own = own_id.and_then(|id| votequorum::get_info(vh, NodeId::from(id)).ok());
    // libvotequorum's info has no total: add up the members' votes and the
    // QDevice's when it casts one.
    let member_votes: Option<u32> = members
        .iter()
        .map(|&m| {
            votequorum::get_info(vh, NodeId::from(m))
                .ok()
                .map(|i| i.node_votes)
        })
        .sum();
    let qdevice_registered = own.as_ref().map(|i| {
        i.flags
            .contains(votequorum::NodeInfoFlags::VOTEQUORUM_INFO_QDEVICE_REGISTERED)
    });
    let qdevice_votes = own
        .as_ref()
        .filter(|i| {
            i.flags
                .contains(votequorum::NodeInfoFlags::VOTEQUORUM_INFO_QDEVICE_CAST_VOTE)
        })
        .map_or(0, |i| i.qdevice_votes);
    EventBody::Quorum {
        quorate,
        ring_id: ring.to_owned(),
        members: members
            .iter()
            .map(|&id| Member {
                node_id: id,
                name: names.get(&id).cloned(),
            })
            .collect(),
        expected_votes: own.as_ref().map(|i| i.node_expected_votes),
        total_votes: member_votes.map(|v| v + qdevice_votes),
        quorum: own.as_ref().map(|i| i.quorum),
        qdevice: qdevice_registered.map(|registered| registered && qdevice_votes > 0),
        source: Some(source),
    }
}

/// `stats.knet.nodeN.linkL.connected` for every peer and link it has.
fn read_links(stats: &cmap::Handle, peers: &[u32]) -> Vec<LinkState> {
    let mut links = Vec::new();
    for &node_id in peers {
        for link in 0..8u8 {
            match cmap::get(
                stats,
                &format!("stats.knet.node{node_id}.link{link}.connected"),
            ) {
                Ok(cmap::Data::UInt8(v)) => links.push(LinkState {
                    node_id,
                    link,
                    connected: v != 0,
                }),
                _ => break,
            }
        }
    }
    links
}

/// Node id -> name from corosync's nodelist (`nodelist.node.N.*`).
pub fn node_names() -> BTreeMap<u32, String> {
    let mut names = BTreeMap::new();
    let Ok(h) = cmap::initialize(cmap::Map::Icmap) else {
        return names;
    };
    for n in 0..64 {
        let Ok(id) = cmap::get(&h, &format!("nodelist.node.{n}.nodeid")) else {
            break;
        };
        let id = match id {
            cmap::Data::UInt32(id) => id,
            _ => continue,
        };
        // cmap::get mishandles strings longer than 15 bytes (rust-corosync 3.2):
        // keep only a name that looks whole.
        if let Ok(cmap::Data::String(name)) = cmap::get(&h, &format!("nodelist.node.{n}.name")) {
            if !name.is_empty() && name.len() < 16 && name.chars().all(|c| c.is_ascii_graphic()) {
                names.insert(id, name);
            }
        }
    }
    names
}

/// This node's corosync node id, if corosync answers.
pub fn own_node_id() -> Option<u32> {
    let h = cmap::initialize(cmap::Map::Icmap).ok()?;
    match cmap::get(&h, "runtime.votequorum.this_node_id").ok()? {
        cmap::Data::UInt32(id) => Some(id),
        _ => None,
    }
}

/// corosync's quorum settings, for the controller to check a drill's
/// `[requires]` against.
pub fn quorum_config() -> BTreeMap<String, String> {
    let mut config = BTreeMap::new();
    let Ok(h) = cmap::initialize(cmap::Map::Icmap) else {
        return config;
    };
    for key in [
        "quorum.provider",
        "quorum.two_node",
        "quorum.wait_for_all",
        "quorum.last_man_standing",
        "quorum.last_man_standing_window",
        "quorum.auto_tie_breaker",
        "quorum.expected_votes",
        "quorum.device.model",
        "quorum.device.net.algorithm",
    ] {
        let value = match cmap::get(&h, key) {
            Ok(cmap::Data::String(s)) if s.len() < 16 => s,
            Ok(cmap::Data::UInt8(v)) => v.to_string(),
            Ok(cmap::Data::UInt16(v)) => v.to_string(),
            Ok(cmap::Data::UInt32(v)) => v.to_string(),
            Ok(cmap::Data::Int32(v)) => v.to_string(),
            Ok(cmap::Data::UInt64(v)) => v.to_string(),
            _ => continue,
        };
        config.insert(key.trim_start_matches("quorum.").to_owned(), value);
    }
    // The token and consensus corosync actually runs with (after
    // token_coefficient): what the timing model predicts from.
    for (key, name) in [
        ("runtime.config.totem.token", "totem.token"),
        ("runtime.config.totem.consensus", "totem.consensus"),
    ] {
        if let Ok(cmap::Data::UInt32(v)) = cmap::get(&h, key) {
            config.insert(name.to_owned(), v.to_string());
        }
    }
    config
}
