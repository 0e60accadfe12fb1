//! The `corodrill` binary: parses flags and calls the library. Nothing else
//! lives here.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use corodrill::commands;
use corodrill::commands::drills::{self, RunArgs};
use corodrill::inventory::Inventory;
use corodrill::lab::{self, LabError, LabSpec, Profile};

#[derive(Parser)]
#[command(
    name = "corodrill",
    version,
    about = "Failure drills for corosync clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// No progress on stderr (results and errors still print).
    #[arg(long, short, global = true)]
    quiet: bool,
    /// More detail on stderr: -v requests and replies, -vv everything.
    #[arg(long, short, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// `json`: progress and logs on stderr as JSON lines, for machines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SchemaFormat {
    Experiment,
    Inventory,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Where runs are recorded (`run`, `demo`, `drill --random`).
#[derive(clap::Args)]
struct HistoryFlags {
    /// The history file each run is appended to (SQLite; created if
    /// missing) and compared with.
    #[arg(
        long,
        value_name = "PATH",
        env = "CORODRILL_HISTORY",
        default_value = corodrill::history::DEFAULT_PATH
    )]
    history: PathBuf,
    /// Record nothing and compare with nothing (whatever `--history` or
    /// CORODRILL_HISTORY say).
    #[arg(long)]
    no_history: bool,
}

impl HistoryFlags {
    fn path(self) -> Option<PathBuf> {
        (!self.no_history).then_some(self.history)
    }
}

#[derive(Subcommand)]
enum Command {
    /// The network-namespace lab: real corosync nodes on this machine.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Run drills against a cluster: faults, quorum watched, verdicts, reports.
    #[command(
        after_help = "Example:\n  corodrill run experiments/ --inventory /var/lib/corodrill/labs/lab/inventory.toml --junit reports/junit.xml"
    )]
    Run {
        /// Experiment files, or directories of them.
        #[arg(required = true)]
        experiments: Vec<PathBuf>,
        #[arg(long)]
        inventory: PathBuf,
        #[arg(long)]
        junit: Option<PathBuf>,
        /// The JSON Lines event log.
        #[arg(long)]
        json: Option<PathBuf>,
        /// A self-contained HTML page: quorum timeline, faults, verdicts.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Accepted for random drills to come; a planned drill has no randomness.
        #[arg(long)]
        seed: Option<u64>,
        /// Print the timeline and touch nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run each experiment N times: pass rate and spread of every measured time.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// With --repeat: the pass rate (0 to 1) a drill needs; it then passes
        /// with its failing runs reported as flaky. Without it every run must pass.
        #[arg(long, value_name = "RATE", value_parser = pass_rate)]
        pass_rate: Option<f64>,
        /// Run a drill again when it failed while the machine stalled
        /// (corosync not scheduled, the agents' timers late), up to N times;
        /// the disturbed run is kept in the reports with its evidence.
        #[arg(long, value_name = "N", default_value_t = 0)]
        retry_disturbed: usize,
        /// How long a fault outlives a silent controller (the agents' lease).
        #[arg(long, default_value = "10s", value_parser = corodrill::experiment::durations::parse_flag_duration)]
        lease: Duration,
        /// Also check every node after every change of faults against the
        /// quorum oracle (predicted state and time); a mismatch fails.
        #[arg(long)]
        oracle: bool,
        /// A corosync setting the oracle assumes instead of the cluster's
        /// (for example expected_votes=2): "what if" (repeatable).
        #[arg(long = "model-override", value_name = "KEY=VALUE", value_parser = key_value)]
        model_override: Vec<(String, String)>,
        /// Run drills that will get Proxmox VE HA nodes reset by their
        /// watchdog (out of quorum for 60 s or more); refused otherwise.
        #[arg(long)]
        allow_fencing: bool,
        /// Install Pacemaker's alert for corodrill for each drill (on the
        /// first node, journaled there like a fault, removed at the drill's
        /// last heal, also by the node's guard if the controller dies), so
        /// that each node's own resource starts and stops are timed to the
        /// millisecond. The alert agent is the agent's binary, at the path
        /// the first node's agent runs from: every node must have it there.
        /// A lab made with --pacemaker has the alert already.
        #[arg(long)]
        pacemaker_alert: bool,
        #[command(flatten)]
        history: HistoryFlags,
        /// A measured time outside its usual range in the history fails its
        /// expectation (exit 1), as a failed expectation does.
        #[arg(long)]
        fail_on_regression: bool,
        /// The verdicts and measured times in Prometheus's text format, for
        /// node_exporter's textfile collector (written whole, then renamed).
        #[arg(long, value_name = "PATH")]
        metrics: Option<PathBuf>,
        /// Push the same metrics to a Prometheus Pushgateway (its base URL,
        /// http://host:9091): job corodrill, grouped by cluster.
        #[arg(long, value_name = "URL")]
        pushgateway: Option<String>,
    },
    /// The runs kept in the history: each drill's latest runs on each
    /// cluster, each measured time's median and spread over them, and what
    /// changed between two runs.
    #[command(
        after_help = "Example:\n  corodrill history --cluster pve --last 10\n  corodrill history --diff 41 42"
    )]
    History {
        /// The history file (SQLite).
        #[arg(
            long,
            value_name = "PATH",
            env = "CORODRILL_HISTORY",
            default_value = corodrill::history::DEFAULT_PATH
        )]
        history: PathBuf,
        /// Only this cluster (the inventory's name).
        #[arg(long)]
        cluster: Option<String>,
        /// Only this drill (the experiment's name).
        #[arg(long)]
        drill: Option<String>,
        /// How many of each drill's latest runs to list and summarize.
        #[arg(long, value_name = "N", default_value_t = 20)]
        last: usize,
        /// What differs between two runs (ids from the table): settings,
        /// versions, the drill file, verdicts and times.
        #[arg(long, num_args = 2, value_names = ["RUN_A", "RUN_B"])]
        diff: Option<Vec<i64>>,
        /// Also write a self-contained page: a trend chart per measured
        /// time, with its median and the usual range's limit.
        #[arg(long, value_name = "PATH", conflicts_with = "diff")]
        html: Option<PathBuf>,
    },
    /// Mutation testing of drills: each runs once, for real, then mutants of
    /// its expectations (quorate flipped, a member added or dropped, votes
    /// +-1, running_on another node, within shorter than measured, hold
    /// past the next change) are judged on the same event log. A mutant
    /// that still passes is an expectation that does not constrain what the
    /// cluster did. Exit 0 every mutant killed, 1 one survived.
    #[command(
        after_help = "Example:\n  corodrill mutate experiments/isolate-one-of-three.toml --inventory /var/lib/corodrill/labs/lab/inventory.toml"
    )]
    Mutate {
        /// Experiment files, or directories of them.
        #[arg(required = true)]
        experiments: Vec<PathBuf>,
        #[arg(long)]
        inventory: PathBuf,
        /// How long a fault outlives a silent controller (the agents' lease).
        #[arg(long, default_value = "10s", value_parser = corodrill::experiment::durations::parse_flag_duration)]
        lease: Duration,
        /// A corosync setting the oracle assumes instead of the cluster's (repeatable).
        #[arg(long = "model-override", value_name = "KEY=VALUE", value_parser = key_value)]
        model_override: Vec<(String, String)>,
        /// Run drills that will get Proxmox VE HA nodes reset by their watchdog.
        #[arg(long)]
        allow_fencing: bool,
    },
    /// Random drills: random faults one step at a time, each judged by the
    /// quorum oracle and the split-brain invariant; a failure is written
    /// out as an experiment that reproduces it, then shrunk.
    #[command(
        after_help = "Example:\n  corodrill drill --random --inventory /var/lib/corodrill/labs/lab/inventory.toml --seed 7 --duration 10m"
    )]
    Drill {
        /// The only kind of drill so far.
        #[arg(long, required = true)]
        random: bool,
        #[arg(long)]
        inventory: PathBuf,
        /// The same seed draws the same faults (default: from the clock, printed).
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value = "10m", value_parser = corodrill::experiment::durations::parse_flag_duration)]
        duration: Duration,
        /// Where a failing step and its shrunk form are written.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// A corosync setting the oracle assumes instead of the cluster's (repeatable).
        #[arg(long = "model-override", value_name = "KEY=VALUE", value_parser = key_value)]
        model_override: Vec<(String, String)>,
        #[arg(long, default_value = "10s", value_parser = corodrill::experiment::durations::parse_flag_duration)]
        lease: Duration,
        #[command(flatten)]
        history: HistoryFlags,
    },
    /// Each node's view of quorum, live, from its agent.
    #[command(
        after_help = "Example:\n  corodrill status --inventory /var/lib/corodrill/labs/lab/inventory.toml"
    )]
    Status {
        #[arg(long)]
        inventory: PathBuf,
    },
    /// Checks before clustering or drilling, each pass/warn/fail with its fix.
    #[command(
        after_help = "Example:\n  corodrill preflight --inventory /var/lib/corodrill/labs/lab/inventory.toml --junit reports/preflight.xml"
    )]
    Preflight {
        #[arg(long)]
        inventory: PathBuf,
        #[arg(long)]
        junit: Option<PathBuf>,
    },
    /// Copy the agent to every node over its connect command (ssh), then
    /// check the version it reports and that it answers.
    #[command(
        name = "install-agent",
        after_help = "Example:\n  corodrill install-agent --inventory pve.toml"
    )]
    InstallAgent {
        #[arg(long)]
        inventory: PathBuf,
        /// The agent binary to install (default: the corodrill-agent beside corodrill).
        #[arg(long)]
        agent: Option<PathBuf>,
    },
    /// How many nodes the cluster can lose, who keeps quorum on a partition,
    /// when Proxmox VE HA fences; with drills, what each should do here.
    #[command(
        after_help = "Example:\n  corodrill plan --inventory /var/lib/corodrill/labs/lab/inventory.toml\n  corodrill plan --from /etc/pve/corosync.conf\n  corodrill plan --inventory pve.toml experiments/pve/"
    )]
    Plan {
        /// Drills to plan against the cluster: their timeline, each node's
        /// predicted quorum after each change, and who would be fenced.
        experiments: Vec<PathBuf>,
        #[arg(long, required_unless_present = "from")]
        inventory: Option<PathBuf>,
        /// A corosync.conf instead of a live cluster.
        #[arg(long)]
        from: Option<PathBuf>,
    },
    /// Roll back everything corodrill left on every node; safe at any time.
    #[command(
        after_help = "Example:\n  corodrill heal --inventory /var/lib/corodrill/labs/lab/inventory.toml"
    )]
    Heal {
        #[arg(long)]
        inventory: PathBuf,
    },
    /// Validate experiment files without touching anything.
    #[command(after_help = "Example:\n  corodrill check experiments/")]
    Check {
        #[arg(required = true)]
        experiments: Vec<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  corodrill completions bash > /etc/bash_completion.d/corodrill"
    )]
    Completions { shell: clap_complete::Shell },
    /// Print the man page of corodrill or of one subcommand (roff), or write every page.
    #[command(
        after_help = "Example:\n  corodrill man run | man -l -\n  corodrill man lab up | man -l -\n  corodrill man --out /usr/local/share/man/man1"
    )]
    Man {
        /// A subcommand (`run`, `lab up`): its page instead of corodrill's.
        subcommand: Vec<String>,
        /// Write corodrill.1 and one page per subcommand (corodrill-run.1,
        /// corodrill-lab-up.1, ...) into this directory.
        #[arg(long, conflicts_with = "subcommand")]
        out: Option<PathBuf>,
    },
    /// Print the JSON Schema of experiment or inventory files (what
    /// docs/schema/ holds, for editors).
    #[command(after_help = "Example:\n  corodrill schema experiment > experiment.json")]
    Schema { format: SchemaFormat },
    /// Print the reference entry of a fault kind, a field, a table, a power driver or an error.
    #[command(
        after_help = "Example:\n  corodrill explain partition\n  corodrill explain within\n  corodrill explain watch.nodes\n  corodrill explain ipmi\n  corodrill explain unknown-field"
    )]
    Explain {
        /// A fault kind (`degrade`), a field (`heal_after`, `expect.nodes`),
        /// a table (`requires`, `invariants`), a power driver (`ipmi`) or an
        /// error, as a message ends (`unknown-field`: docs/errors.md).
        topic: String,
    },
    /// Every shipped drill on a lab of its shape; reports into reports/.
    #[command(after_help = "Example:\n  corodrill demo")]
    Demo {
        #[arg(long, default_value = "experiments")]
        experiments: PathBuf,
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
        /// Labs are named PREFIX0, PREFIX1, ... (at most 8 characters).
        #[arg(long, default_value = "demo")]
        lab_prefix: String,
        #[command(flatten)]
        history: HistoryFlags,
    },
}

/// `KEY=VALUE` on the command line.
/// `--pass-rate`: a fraction from 0 to 1.
fn pass_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number from 0 to 1 (for example 0.95)"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{rate} is not between 0 and 1 (for example 0.95)"))
    }
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("{s:?}: expected KEY=VALUE")),
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PowerAction {
    Off,
    On,
    Status,
}

#[derive(Subcommand)]
enum LabCommand {
    /// Build a lab and wait until its cluster is quorate with every node.
    #[command(after_help = "Example:\n  corodrill lab up --nodes 3 --links 2 --qdevice")]
    Up {
        #[arg(long, default_value = "lab")]
        name: String,
        #[arg(long, default_value_t = 3)]
        nodes: u8,
        /// corosync (knet) links per node.
        #[arg(long, default_value_t = 1)]
        links: u8,
        /// Add a QDevice host `qnetd` (net model, ffsplit).
        #[arg(long)]
        qdevice: bool,
        /// totem token in milliseconds (default 1000; with --profile proxmox, corosync's own).
        #[arg(long)]
        token: Option<u32>,
        #[arg(long, value_enum, default_value_t = Profile::Fast)]
        profile: Profile,
        /// A votequorum key, for example two_node=1 (repeatable).
        #[arg(long = "quorum-option", value_name = "KEY=VALUE")]
        quorum_options: Vec<String>,
        /// Where to write the inventory (default: <lab dir>/inventory.toml).
        #[arg(long)]
        inventory_out: Option<PathBuf>,
        /// Run sshd on every node and reach the agents over ssh, as on a
        /// real cluster (installs the agent on each node over it).
        #[arg(long)]
        ssh: bool,
        /// Run Pacemaker on every node, set up for a lab without fencing
        /// (stonith-enabled=false, no-quorum-policy=stop).
        #[arg(long)]
        pacemaker: bool,
        /// Create an ocf:pacemaker:Dummy resource, monitored every 2 s, and
        /// wait until it runs (repeatable; needs --pacemaker).
        #[arg(long = "resource", value_name = "NAME")]
        resources: Vec<String>,
        /// Every node a Debian 12 VM under QEMU (2 to 5 nodes; with
        /// --qdevice the QDevice host `qnetd` a VM too), booted from an image
        /// built from Debian's packages and cached; reached over ssh,
        /// powered through QMP. KVM where it works, else TCG.
        #[arg(long, conflicts_with_all = ["ssh", "pacemaker"])]
        vm: bool,
        /// With --vm: install this corodrill-agent .deb on every node with
        /// dpkg -i (default: `install-agent` copies the agent beside this
        /// corodrill).
        #[arg(long, value_name = "DEB", requires = "vm")]
        agent_deb: Option<PathBuf>,
        /// With --vm: kvm or tcg (default: kvm where this machine runs it).
        #[arg(long, value_enum, requires = "vm")]
        accel: Option<lab::vm::Accel>,
    },
    /// Remove a lab: its processes, namespaces and files. Safe to repeat.
    #[command(after_help = "Example:\n  corodrill lab down --all")]
    Down {
        #[arg(long, default_value = "lab", conflicts_with = "all")]
        name: String,
        /// Every lab on this machine.
        #[arg(long)]
        all: bool,
    },
    /// Each node's corosync, quorum, members, ring id and links.
    #[command(after_help = "Example:\n  corodrill lab status --name lab")]
    Status {
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// Pull a lab node's plug (every process in it dies, its links go
    /// down), power it on (links up, its daemons start), or say which it is.
    /// What the `lab` power driver does; usable as a `command` driver too.
    #[command(after_help = "Example:\n  corodrill lab power pve3 off")]
    Power {
        #[arg(long, default_value = "lab")]
        name: String,
        node: String,
        #[arg(value_enum)]
        action: PowerAction,
    },
    /// Write the VM lab's image (built first if it is not cached) as a
    /// Vagrant box for vagrant-libvirt: the Vagrantfile's nodes then boot
    /// the same Debian 12 system as `lab up --vm`, with no download.
    #[command(
        after_help = "Example:\n  corodrill lab box --out corodrill-debian12.box\n  vagrant box add --name corodrill/debian12 corodrill-debian12.box\n  CORODRILL_BOX=corodrill/debian12 vagrant up --provider libvirt"
    )]
    Box {
        #[arg(long, default_value = "corodrill-debian12.box")]
        out: PathBuf,
    },
    /// Run a command on a lab node, inside all its namespaces.
    #[command(after_help = "Example:\n  corodrill lab exec pve1 -- corosync-quorumtool -s")]
    Exec {
        #[arg(long, default_value = "lab")]
        name: String,
        node: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap's own usage errors are invalid input: exit 2, as the README says.
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging(cli.verbose, cli.log_format);
    let reporter = Reporter::new(cli.quiet, cli.log_format);
    let progress = |msg: &str| reporter.say(msg);
    let result = match cli.command {
        Command::Lab(cmd) => run_lab(cmd, &progress),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "corodrill",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { subcommand, out } => Ok(man(&subcommand, out.as_deref())),
        Command::Schema { format } => {
            let format = match format {
                SchemaFormat::Experiment => corodrill::reference::Format::Experiment,
                SchemaFormat::Inventory => corodrill::reference::Format::Inventory,
            };
            print!("{}", corodrill::reference::schema(format));
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { topic } => match corodrill::reference::explain(&topic) {
            Some(entry) => {
                print!("{entry}");
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!(
                    "corodrill: nothing named {topic:?} in the reference; known: {}, and every field of them",
                    corodrill::reference::topics().join(", ")
                );
                Ok(ExitCode::from(2))
            }
        },
        Command::Check { experiments } => Ok(ExitCode::from(drills::check(&experiments))),
        Command::History {
            history,
            cluster,
            drill,
            last,
            diff,
            html,
        } => Ok(ExitCode::from(commands::history::history_command(
            &commands::history::HistoryArgs {
                history,
                cluster,
                drill,
                last,
                diff: diff.and_then(|d| Some((*d.first()?, *d.get(1)?))),
                html,
            },
        ))),
        Command::Drill {
            random: _,
            inventory,
            seed,
            duration,
            out,
            model_override,
            lease,
            history,
        } => {
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_secs())
            });
            let args = corodrill::commands::random::RandomArgs {
                inventory,
                seed,
                duration,
                out,
                model_override: model_override.into_iter().collect(),
                lease,
                history: history.path(),
            };
            Ok(ExitCode::from(corodrill::commands::random::random_drill(
                &args,
                &progress,
                &corodrill::run::CANCEL,
            )))
        }
        Command::Status { inventory } => Ok(ExitCode::from(corodrill::commands::status::status(
            &inventory,
        ))),
        Command::Heal { inventory } => {
            Ok(ExitCode::from(corodrill::commands::heal::heal(&inventory)))
        }
        Command::Plan {
            experiments,
            inventory,
            from,
        } => Ok(ExitCode::from(corodrill::commands::plan::plan(
            inventory.as_deref(),
            from.as_deref(),
            &experiments,
        ))),
        Command::InstallAgent { inventory, agent } => Ok(ExitCode::from(
            corodrill::commands::install::install_agent(&inventory, agent.as_deref()),
        )),
        Command::Preflight { inventory, junit } => Ok(ExitCode::from(
            corodrill::commands::preflight::preflight(&inventory, junit.as_deref()),
        )),
        Command::Run {
            experiments,
            inventory,
            junit,
            json,
            html,
            seed: _,
            dry_run,
            repeat,
            pass_rate,
            retry_disturbed,
            lease,
            oracle,
            model_override,
            allow_fencing,
            pacemaker_alert,
            history,
            fail_on_regression,
            metrics,
            pushgateway,
        } => {
            corodrill::run::cancel_on_signals();
            let args = RunArgs {
                history: history.path(),
                fail_on_regression,
                metrics,
                pushgateway,
                paths: experiments,
                inventory,
                junit,
                json,
                html,
                dry_run,
                repeat,
                lease,
                oracle,
                model_override: model_override.into_iter().collect(),
                allow_fencing,
                pacemaker_alert,
                pass_rate,
                retry_disturbed,
            };
            Ok(ExitCode::from(drills::run_command(
                &args,
                &progress,
                &corodrill::run::CANCEL,
            )))
        }
        Command::Mutate {
            experiments,
            inventory,
            lease,
            model_override,
            allow_fencing,
        } => {
            corodrill::run::cancel_on_signals();
            let args = corodrill::commands::mutate::MutateArgs {
                paths: experiments,
                inventory,
                lease,
                model_override: model_override.into_iter().collect(),
                allow_fencing,
            };
            Ok(ExitCode::from(corodrill::commands::mutate::mutate_command(
                &args,
                &progress,
                &corodrill::run::CANCEL,
            )))
        }
        Command::Demo {
            experiments,
            reports,
            lab_prefix,
            history,
        } => {
            corodrill::run::cancel_on_signals();
            Ok(ExitCode::from(drills::demo(
                &experiments,
                &reports,
                &lab_prefix,
                history.path().as_deref(),
                &progress,
                &corodrill::run::CANCEL,
            )))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("corodrill: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Every command, as a path of names (`["lab", "up"]`), with its clap
/// command, the top one first.
fn commands() -> Vec<(Vec<String>, clap::Command)> {
    fn walk(path: Vec<String>, cmd: &clap::Command, out: &mut Vec<(Vec<String>, clap::Command)>) {
        out.push((path.clone(), cmd.clone()));
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let mut p = path.clone();
            p.push(sub.get_name().to_owned());
            walk(p, sub, out);
        }
    }
    let mut top = Cli::command();
    // Subcommands' pages name their command in full (corodrill-lab-up).
    top.build();
    let mut out = Vec::new();
    walk(Vec::new(), &top, &mut out);
    out
}

/// `corodrill man`: one page to stdout, or every page into a directory.
fn man(subcommand: &[String], out: Option<&Path>) -> ExitCode {
    let all = commands();
    if let Some(dir) = out {
        for (_, cmd) in &all {
            // Built, a subcommand's display name is corodrill-lab-up.
            let page = clap_mangen::Man::new(cmd.clone());
            let file = dir.join(page.get_filename());
            let mut roff = Vec::new();
            let written = page
                .render(&mut roff)
                .and_then(|()| std::fs::write(&file, roff));
            if let Err(e) = written {
                eprintln!("corodrill: {}: {e}", file.display());
                return ExitCode::from(3);
            }
        }
        return ExitCode::SUCCESS;
    }
    let Some((_, cmd)) = all.iter().find(|(p, _)| p.as_slice() == subcommand) else {
        eprintln!(
            "corodrill: no subcommand {:?}; `corodrill man --out DIR` writes every page",
            subcommand.join(" ")
        );
        return ExitCode::from(2);
    };
    match clap_mangen::Man::new(cmd.clone()).render(&mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corodrill: {e}");
            ExitCode::from(3)
        }
    }
}

fn run_lab(cmd: LabCommand, progress: &dyn Fn(&str)) -> Result<ExitCode, LabError> {
    match cmd {
        LabCommand::Up {
            name,
            nodes,
            links,
            qdevice,
            token,
            profile,
            quorum_options,
            inventory_out,
            ssh,
            pacemaker,
            resources,
            vm,
            agent_deb,
            accel,
        } => {
            let mut spec = LabSpec::new(
                &name,
                nodes,
                links,
                qdevice,
                token,
                profile,
                &quorum_options,
            )?
            .with_pacemaker(pacemaker, &resources)?;
            spec.ssh = ssh;
            if vm {
                let agent = match agent_deb {
                    Some(deb) => lab::vm::AgentInstall::Deb(deb),
                    None => lab::vm::AgentInstall::InstallAgent,
                };
                spec.vm = Some(lab::vm::VmSpec::new(agent, accel));
            }
            let install = ssh
                || spec
                    .vm
                    .as_ref()
                    .is_some_and(|v| v.agent == lab::vm::AgentInstall::InstallAgent);
            // A lab with ssh reaches its agents as a real cluster does, so
            // they are installed the same way, once the cluster is whole.
            let ready = |inventory: &Inventory| {
                if install {
                    commands::lab::install_agents(inventory, progress)
                } else {
                    Ok(())
                }
            };
            let up = lab::up_then(spec, inventory_out.as_deref(), progress, &ready)?;
            println!(
                "lab {} is up: {} nodes quorate{} in {:.1}s",
                up.lab.spec().name,
                up.lab.spec().nodes,
                if up.pacemaker.is_some() {
                    " and Pacemaker settled"
                } else {
                    ""
                },
                up.elapsed.as_secs_f64()
            );
            commands::lab::print_up_table(&up);
            if let Some((node, view)) = &up.pacemaker {
                commands::lab::print_pacemaker(node, view);
            }
            println!("inventory: {}", up.inventory_path.display());
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Down { name, all } => {
            let names = if all { lab::list() } else { vec![name] };
            if names.is_empty() {
                println!("no lab is up");
            }
            for name in names {
                let removed = lab::down(&name)?;
                if removed.is_empty() {
                    println!("lab {name}: nothing to remove");
                } else {
                    println!(
                        "lab {name} removed: {} process(es), {} namespace(s){}",
                        removed.processes,
                        removed.namespaces.len(),
                        removed
                            .dir
                            .map(|d| format!(", {}", d.display()))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Status { name } => {
            let (lab, hosts) = lab::status(&name)?;
            commands::lab::print_status(&lab, &hosts);
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Power { name, node, action } => {
            match action {
                PowerAction::Off => lab::power_off(&name, &node)?,
                PowerAction::On => lab::power_on(&name, &node)?,
                PowerAction::Status => {
                    let on = lab::power_status(&name, &node)?;
                    println!("{node} is powered {}", if on { "on" } else { "off" });
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Box { out } => {
            lab::vm::check_environment()?;
            let (image, _built) = lab::vm::image::ensure(progress)?;
            lab::vm::vagrant_box::write(&image, &out)?;
            println!("box: {}", out.display());
            println!(
                "add it with: vagrant box add --name corodrill/debian12 {}",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Exec {
            name,
            node,
            command,
        } => {
            let status = lab::exec(&name, &node, &command)?;
            // A command killed by a signal reports 128+N, as shells do.
            let code = status.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                128 + status.signal().unwrap_or(0)
            });
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
    }
}

/// Where progress goes: a spinner with what is awaited on a terminal,
/// plain lines otherwise, JSON lines with `--log-format json`, nothing with
/// `--quiet`.
struct Reporter {
    quiet: bool,
    json: bool,
    spinner: Option<indicatif::ProgressBar>,
}

impl Reporter {
    fn new(quiet: bool, format: LogFormat) -> Reporter {
        let json = format == LogFormat::Json;
        let spinner = (!quiet && !json && std::io::stderr().is_terminal()).then(|| {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        Reporter {
            quiet,
            json,
            spinner,
        }
    }

    /// A message starting with "waiting" is what is awaited now (the
    /// spinner shows it with the time spent); others are milestones.
    fn say(&self, msg: &str) {
        if self.quiet {
            return;
        }
        if self.json {
            tracing::info!(target: "corodrill::progress", "{msg}");
            return;
        }
        match &self.spinner {
            Some(pb) if msg.starts_with("waiting") => pb.set_message(msg.to_owned()),
            Some(pb) => {
                pb.println(msg);
                pb.set_message(String::new());
            }
            None => eprintln!("{msg}"),
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Some(pb) = &self.spinner {
            pb.finish_and_clear();
        }
    }
}

/// `-v`: requests and replies; `-vv`: everything; `--log-format json`:
/// every line as JSON (progress included).
fn init_logging(verbose: u8, format: LogFormat) {
    let level = match (verbose, format) {
        (0, LogFormat::Json) => "info",
        (0, LogFormat::Text) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CORODRILL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand's `--help` ends with an example.
    #[test]
    fn every_subcommand_has_an_example() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.has_subcommands() {
                    walk(sub, &path, missing);
                } else if !sub
                    .get_after_help()
                    .is_some_and(|h| h.to_string().contains("Example:\n  corodrill "))
                {
                    missing.push(path);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "corodrill", &mut missing);
        assert!(missing.is_empty(), "no example in --help of: {missing:?}");
        Cli::command().debug_assert();
    }

    /// The man pages in docs/man (shipped in the package) are what
    /// `corodrill man --out` writes, one per command, every command
    /// covered. CORODRILL_BLESS=1 rewrites them.
    #[test]
    fn committed_man_pages_cover_every_command() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/man");
        let mut want = std::collections::BTreeMap::new();
        for (_, cmd) in commands() {
            let page = clap_mangen::Man::new(cmd);
            let mut roff = Vec::new();
            page.render(&mut roff).unwrap();
            want.insert(page.get_filename(), roff);
        }
        assert!(want.contains_key("corodrill-lab-up.1") && want.contains_key("corodrill-run.1"));
        let bless = std::env::var_os("CORODRILL_BLESS").is_some();
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let have: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".1"))
                    .collect()
            })
            .unwrap_or_default();
        for (name, roff) in &want {
            let path = dir.join(name);
            if std::fs::read(&path).ok().as_ref() != Some(roff) {
                assert!(
                    bless,
                    "docs/man/{name} is stale or missing: CORODRILL_BLESS=1 cargo test -p corodrill --bin corodrill man_pages"
                );
                std::fs::write(&path, roff).unwrap();
            }
        }
        for name in have {
            assert!(
                want.contains_key(&name),
                "docs/man/{name}: no such command any more"
            );
        }
    }

    /// The scheduled drills' units (packaging/corodrill/): the service's
    /// ExecStart is a command line corodrill accepts, failing on a
    /// regression; `systemd-analyze verify` has nothing to say of either.
    #[test]
    fn drill_timer_units_verify_and_their_command_line_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/corodrill");
        let service = std::fs::read_to_string(dir.join("corodrill-drill@.service")).unwrap();
        let exec = service
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("an ExecStart= line");
        let words: Vec<String> = exec
            .replace("%i", "weekly")
            .split_whitespace()
            .filter(|w| *w != "$CORODRILL_RUN_ARGS")
            .map(str::to_owned)
            .collect();
        assert_eq!(words[0], "/usr/bin/corodrill");
        match Cli::try_parse_from(&words).map(|cli| cli.command) {
            Ok(Command::Run {
                fail_on_regression,
                history,
                metrics,
                ..
            }) => {
                assert!(fail_on_regression, "{exec}");
                assert!(!history.no_history, "{exec}");
                assert!(metrics.is_some(), "{exec}");
            }
            Ok(_) => panic!("not a run: {exec}"),
            Err(e) => panic!("{exec}: {e}"),
        }

        // systemd-analyze verify wants the units' binary and systemd's own
        // units under one root.
        let root = std::env::temp_dir().join(format!("corodrill-units-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let units = root.join("usr/lib/systemd");
        std::fs::create_dir_all(&units).unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        let copied = std::process::Command::new("cp")
            .args(["-a", "/usr/lib/systemd/system"])
            .arg(&units)
            .status()
            .unwrap();
        assert!(copied.success());
        for unit in ["corodrill-drill@.service", "corodrill-drill@.timer"] {
            std::fs::copy(dir.join(unit), units.join("system").join(unit)).unwrap();
        }
        std::fs::write(root.join("usr/bin/corodrill"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            root.join("usr/bin/corodrill"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", root.display()))
            .args([
                "corodrill-drill@weekly.service",
                "corodrill-drill@weekly.timer",
            ])
            .output()
            .expect("systemd-analyze (Debian package systemd)");
        let _ = std::fs::remove_dir_all(&root);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.is_empty(),
            "systemd-analyze verify: {said}"
        );
    }

    #[test]
    fn completions_and_man_page_render() {
        let mut out = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "corodrill",
            &mut out,
        );
        assert!(String::from_utf8_lossy(&out).contains("corodrill"));
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut page)
            .unwrap();
        assert!(String::from_utf8_lossy(&page).contains(".TH corodrill"));
    }
}
