//! Command-line interface. Every flag has an environment variable, so the console can be
//! configured the same way from a shell, a unit file or a container.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use app::auth::Role;
use app::runs::Operation;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "Slipway: the release console for Docker applications"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web console.
    Serve(ServeArgs),
    /// Manage the people who may use the console.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage the stacks the console looks after.
    #[command(subcommand)]
    Stack(StackCommand),
    #[command(flatten)]
    Run(RunCommand),
    /// Print the history: every run that touched a stack, newest first, filtered.
    History {
        #[arg(long, default_value = "")]
        stack: String,
        /// deploy, update, migrate, rollback, …
        #[arg(long, default_value = "")]
        operation: String,
        /// succeeded, failed, cancelled, interrupted or running.
        #[arg(long, default_value = "")]
        outcome: String,
        /// Who started or approved the run.
        #[arg(long, default_value = "")]
        person: String,
        /// From this day (YYYY-MM-DD, UTC).
        #[arg(long, default_value = "")]
        since: String,
        /// Until the end of this day.
        #[arg(long, default_value = "")]
        until: String,
        /// Text in the version of the release the run shipped.
        #[arg(long, default_value = "")]
        version: String,
        /// Print every matching run as CSV instead of the newest page as lines.
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage where the console tells the team what happened: Slack, Teams, signed webhooks.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Print the delivery metrics (DORA) of a stack, or of all, over 30 and 90 days.
    Delivery {
        #[arg(long, default_value = "")]
        stack: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the model Slipway would run for a compose file, as `docker compose config`
    /// prints it, without adding a stack; a file Slipway refuses is refused with the reason.
    Config {
        /// The compose file.
        #[arg(long)]
        compose: PathBuf,
        /// The env file its variables come from.
        #[arg(long)]
        env_file: Option<PathBuf>,
        /// A profile to activate (repeat for more).
        #[arg(long)]
        profile: Vec<String>,
        /// The Compose project name; by default the compose file's folder's.
        #[arg(long)]
        project: Option<String>,
        /// Print secret values instead of masking them.
        #[arg(long)]
        unmasked: bool,
    },
    /// Print what a stack's containers wrote: every service's, or one's.
    Logs {
        /// The stack's name.
        name: String,
        /// Only this service.
        service: Option<String>,
        /// Keep printing lines as they are written, until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
        /// Only lines that report an error.
        #[arg(long)]
        errors: bool,
        /// How many of the newest lines to start with.
        #[arg(long, default_value_t = 100)]
        tail: usize,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show every probe of a stack with its newest result (checking once now when no
    /// console probed the stack lately); exit 1 when one fails.
    Health {
        /// The stack's name.
        name: String,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show a stack's services and the containers that run them.
    Status {
        /// The stack's name.
        name: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Dump the stack's database (x-slipway.backup: pg_dump) into the backup directory and
    /// record it in the inventory, with the row count of every table.
    Backup {
        /// The stack's name.
        name: String,
        /// A note kept with the backup (why it was taken).
        #[arg(long, default_value = "")]
        why: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Request a restore of a backup into the live database (the app services stop, the
    /// database is restored in one transaction, its tables are counted, the app services
    /// start again). It runs once someone else approves it on the Approvals page.
    Restore {
        /// The stack's name.
        name: String,
        /// The backup's id (`slipway backups NAME` lists them).
        backup: String,
        /// Why: shown to whoever decides.
        #[arg(long)]
        reason: String,
        /// The console user who asks (operators and up); their password is read from
        /// standard input, and they can never approve it themselves.
        #[arg(long = "as", value_name = "NAME")]
        as_user: String,
        /// Restore a backup that no restore drill has verified (never a corrupt one).
        #[arg(long)]
        force: bool,
        /// Start the app services on the images recorded with the backup, not the current ones.
        #[arg(long)]
        recorded_images: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Request a rollback of the app services to the images an earlier run recorded (by
    /// default the last-known-good before the current images), without downtime. It runs
    /// once someone else approves it on the Approvals page.
    Rollback {
        /// The stack's name.
        name: String,
        /// The run whose recorded images to go back to.
        #[arg(long)]
        to: Option<String>,
        /// Also undo the migrations applied since that run (x-slipway.rollback_migration),
        /// with the app stopped and the database backed up first.
        #[arg(long)]
        undo_migrations: bool,
        /// An emergency rollback: stop the app, back up the database, restore the newest
        /// verified backup, start the last-known-good images. An admin may approve their own
        /// request on the console by breaking the glass.
        #[arg(long, conflicts_with_all = ["to", "undo_migrations"])]
        emergency: bool,
        /// Why: shown to whoever decides.
        #[arg(long)]
        reason: String,
        /// The console user who asks (operators and up); their password is read from
        /// standard input, and they can never approve it themselves.
        #[arg(long = "as", value_name = "NAME")]
        as_user: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List a stack's feature flags: FEATURE_* variables of its env file and those its
    /// compose file names in x-slipway.flags, with the services that read them.
    Flags {
        /// The stack's name.
        name: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a feature flag: written to the env file (the previous version kept beside it),
    /// then the app services that read it replaced without downtime; a failure puts the env
    /// file back.
    Flag {
        /// The stack's name.
        name: String,
        /// The flag, e.g. FEATURE_NEW_CHECKOUT.
        flag: String,
        /// Its new value, e.g. false.
        value: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Releases: plan one, show it with its checklist, tick an item, ship it.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// List the approval requests, newest first.
    Approvals {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Act on one approval request.
    #[command(subcommand)]
    Approval(ApprovalCommand),
    /// Prove a backup restores: checksum, then a restore drill into a throwaway database.
    Verify {
        /// The stack's name.
        name: String,
        /// The backup's id (`slipway backups NAME` lists them).
        backup: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List a stack's backups, newest first.
    Backups {
        /// The stack's name.
        name: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The arguments of every command that starts a run.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// The stack's name.
    pub name: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The commands that start a run on a stack.
#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Deploy a stack from nothing: env check, data services, migrations, app services,
    /// health, and the running images recorded as the last-known-good.
    Deploy(RunArgs),
    /// Replace the app services whose definition changed, one by one beside the running
    /// ones, switching the edge: no request dropped. Data services are never touched.
    Update(RunArgs),
    /// Stop the app services, run the migrations against the database alone, verify the
    /// migration records and start everything again.
    Migrate(RunArgs),
    /// Remove the stack's stopped containers and unused images older than
    /// SLIPWAY_CLEANUP_AFTER (default 24h), never an image a recorded run could roll back to.
    Cleanup(RunArgs),
    /// Start every service of a stack that is not running (creating what is missing).
    Start(RunArgs),
    /// Stop every service of a stack, dependents first.
    Stop(RunArgs),
    /// Delete the stack's backups outside its retention rule (`slipway stack policy`).
    Prune(RunArgs),
}

impl RunCommand {
    /// The operation and its arguments.
    pub fn operation(&self) -> (Operation, &RunArgs) {
        match self {
            RunCommand::Deploy(args) => (Operation::Deploy, args),
            RunCommand::Update(args) => (Operation::Update, args),
            RunCommand::Migrate(args) => (Operation::Migrate, args),
            RunCommand::Cleanup(args) => (Operation::Cleanup, args),
            RunCommand::Start(args) => (Operation::Start, args),
            RunCommand::Stop(args) => (Operation::Stop, args),
            RunCommand::Prune(args) => (Operation::Prune, args),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// The channels, with the messages waiting and given up on.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add a channel. The webhook address is read from standard input, never taken as an
    /// argument (other users of the machine see arguments); a signed webhook's secret is
    /// printed this once.
    Add {
        name: String,
        /// slack, teams or webhook.
        #[arg(long)]
        kind: String,
        /// The events it wants, separated by commas: run.started, run.succeeded, run.failed,
        /// approval.requested, approval.decided, backup.failed, backup.unverified,
        /// rollback.emergency, verification.failed, rollback.automatic, release.milestone_due,
        /// release.milestone_overdue.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Queue a test message for a channel; the console's sender delivers it.
    Test {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// A channel's delivery log, newest first.
    Log {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Plan a release of a stack with the default checklist; prints its id.
    Create {
        /// The stack's name.
        name: String,
        /// The release's version label, e.g. 1.1.0.
        #[arg(long)]
        version: String,
        /// A variable the release writes to the env file when it ships (repeatable).
        #[arg(long = "set", value_name = "VAR=VALUE")]
        sets: Vec<String>,
        /// T-0: 2026-12-01 14:00 (UTC) or RFC 3339; now when left out.
        #[arg(long)]
        at: Option<String>,
        /// Who owns it (the command line's user when left out).
        #[arg(long, default_value = "")]
        owner: String,
        /// The run it ships with: update (default), migrate or deploy.
        #[arg(long, default_value = "update")]
        run: String,
        #[arg(long, default_value = "")]
        notes: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show a release: its plan and checklist (automatic items evaluated now).
    Show {
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Tick a manual item (or untick it with --undo) as a console user of the item's role;
    /// their password is read from standard input.
    Tick {
        id: String,
        /// The item's key, e.g. review.approved (`slipway release show` lists them).
        item: String,
        #[arg(long)]
        undo: bool,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long = "as", value_name = "NAME")]
        as_user: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Ship a release: refused while a required item does not pass (named); otherwise its
    /// settings are written and its run follows here.
    Ship {
        id: String,
        /// Ship outside the stack's deploy window, saying why: an approval is requested.
        #[arg(long = "override", value_name = "WHY", default_value = "")]
        override_reason: String,
        /// Who asks, where the release needs an approval (operators and up; the password is
        /// read from standard input).
        #[arg(long = "as", value_name = "NAME")]
        as_user: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// Wait for the decision, then follow the run it starts; exit 0 when the run succeeded.
    Wait {
        /// The request's id.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Print the model Slipway runs for a stack (its profiles active), as `docker compose
    /// config` prints it, secrets masked.
    Config {
        /// The stack's name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show the Compose profiles active for a stack, or set them (`--set a,b`; `--set ""`
    /// for none); the next deploy applies them.
    Profiles {
        /// The stack's name.
        name: String,
        #[arg(long, value_delimiter = ',')]
        set: Option<Vec<String>>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show a stack's health policy, or set it: how often the console probes it, how long a
    /// change is watched after its verification (`0s`: not), and whether a failed
    /// verification of an update puts the previous version back (`rollback`) or only alerts.
    Health {
        /// The stack's name.
        name: String,
        #[arg(long, value_parser = parse_duration)]
        every: Option<Duration>,
        #[arg(long, value_parser = humantime::parse_duration)]
        watch: Option<Duration>,
        #[arg(long, value_parser = ["alert", "rollback"])]
        on_failed_verification: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show whether Slipway's managed edge is in front of a stack's services, or turn it on
    /// (`--managed true`) or off; the next deploy applies it.
    Edge {
        /// The stack's name.
        name: String,
        #[arg(long)]
        managed: Option<bool>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show a stack's approval policy, or change the parts given.
    Approvals {
        /// The stack's name.
        name: String,
        /// Approvals a request needs (1 to 10).
        #[arg(long)]
        required: Option<i64>,
        /// How long a request waits before it expires, e.g. 60m.
        #[arg(long, value_parser = parse_minutes)]
        expires: Option<i64>,
        /// Whether deploy, update and migrate need an approval too.
        #[arg(long)]
        gate_changes: Option<bool>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a stack's release templates (checklist, then timeline), or set them from files
    /// (a line per item; an empty file: the procedure's).
    Templates {
        /// The stack's name.
        name: String,
        #[arg(long, value_name = "FILE")]
        checklist: Option<std::path::PathBuf>,
        #[arg(long, value_name = "FILE")]
        timeline: Option<std::path::PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show a stack's release policy, or change the parts given: changes only through
    /// releases, and the deploy window.
    Releases {
        /// The stack's name.
        name: String,
        /// Deploy, update and migrate only as a release's run.
        #[arg(long)]
        only: Option<bool>,
        /// The window's time zone, e.g. Europe/Berlin.
        #[arg(long)]
        time_zone: Option<String>,
        /// Allowed days, e.g. mon-fri ("" for every day).
        #[arg(long)]
        days: Option<String>,
        /// Allowed hours, e.g. 09:00-17:00 ("" for all day).
        #[arg(long)]
        hours: Option<String>,
        /// Freezes, one per line: FROM to TO why ("" for none).
        #[arg(long)]
        freezes: Option<String>,
        /// The address the stack is served at, which CORS_ORIGIN must name.
        #[arg(long)]
        public_url: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show a stack's backup policy, or change the parts given.
    Policy {
        /// The stack's name.
        name: String,
        /// Back up (then verify and prune) this often, e.g. 6h; `off` for no schedule.
        #[arg(long, value_parser = app::backups::parse_every)]
        backup_every: Option<i64>,
        /// Keep the newest N backups.
        #[arg(long)]
        keep_last: Option<i64>,
        /// Also keep the newest backup of each of the last D days.
        #[arg(long)]
        keep_daily: Option<i64>,
        /// Also keep the newest backup of each of the last W weeks.
        #[arg(long)]
        keep_weekly: Option<i64>,
        /// Whether an update backs the database up first (`true` or `false`).
        #[arg(long)]
        backup_before_update: Option<bool>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add a stack; its compose file is read through first and refused if Slipway cannot use it.
    Add {
        /// The stack's name: lower-case letters, digits, dashes, underscores.
        name: String,
        /// The compose file.
        #[arg(long)]
        compose: PathBuf,
        /// The env file its variables come from.
        #[arg(long)]
        env_file: Option<PathBuf>,
        /// The Compose project name; by default the stack's name.
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input (not echoed on a terminal).
    Add {
        /// Sign-in name: letters, digits, dots, dashes, underscores.
        name: String,
        /// viewer, operator, approver or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and name the first broken entry.
    Verify {
        /// A head exported earlier (`slipway audit head`, or the console's `audit head`
        /// log line), as SEQ:HASH: the trail must still hold that entry with that hash.
        #[arg(long, value_parser = parse_head)]
        head: Option<(i64, String)>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the newest entry's number and hash, as SEQ:HASH, to keep outside the console.
    Head {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Create the audit key of a store written by a version without one (once; never
    /// replaces a key).
    InitKey {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn parse_minutes(value: &str) -> Result<i64, String> {
    humantime::parse_duration(value)
        .map(|every| (every.as_secs() / 60) as i64)
        .map_err(|error| format!("{error}; write it like 60m or 2h"))
}

fn parse_head(value: &str) -> Result<(i64, String), String> {
    let (seq, hash) = value
        .split_once(':')
        .ok_or("expected SEQ:HASH, as `slipway audit head` prints it")?;
    let seq = seq.parse().map_err(|_| "SEQ must be a number".to_owned())?;
    if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("HASH must be 64 hex digits".into());
    }
    Ok((seq, hash.to_ascii_lowercase()))
}

/// Where the console keeps its state; shared by every command that opens the store.
#[derive(Clone, Debug, Args)]
pub struct StoreArgs {
    /// Directory for the embedded SQLite store (and, later, backups).
    #[arg(long, env = "SLIPWAY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Keep the console's state in this database instead (postgres://…).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The audit trail's key, kept outside the store; `audit.key` in the data directory
    /// by default, created on first use. Every console and command on one store must use
    /// the same file.
    #[arg(long, env = "SLIPWAY_AUDIT_KEY_FILE")]
    pub audit_key_file: Option<PathBuf>,

    /// Where backup runs write their dumps (a folder per stack); `backups` in the data
    /// directory by default.
    #[arg(long, env = "SLIPWAY_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,

    /// How long a change is watched after its verification on a stack without a health
    /// policy of its own (`slipway stack health`); `0s`: verified once, not watched.
    #[arg(long, env = "SLIPWAY_WATCH_DEFAULT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub watch_default: Duration,
}

#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SLIPWAY_ADDR", default_value = "127.0.0.1:3000", value_parser = parse_listen_addr)]
    pub addr: SocketAddr,

    #[command(flatten)]
    pub store: StoreArgs,

    /// The address people use to reach the console, e.g. https://slipway.example.com.
    /// https gives Secure `__Host-` cookies; plain http is allowed only when both this URL's
    /// host and the listen address are loopback (the development setting). Default:
    /// http:// and the listen address.
    #[arg(long, env = "SLIPWAY_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Serve plain http to the network anyway (passwords and session cookies cross it
    /// unencrypted); a warning is logged at every start.
    #[arg(long, env = "SLIPWAY_INSECURE_HTTP")]
    pub insecure_http: bool,

    /// Addresses of reverse proxies whose `X-Forwarded-For` is believed, comma-separated.
    /// Sign-in throttling and the audit trail then see the client behind the proxy.
    #[arg(
        long = "trusted-proxy",
        env = "SLIPWAY_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,

    /// A session ends after this long without a request.
    #[arg(long, env = "SLIPWAY_IDLE_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// A session ends this long after sign-in, however active.
    #[arg(long, env = "SLIPWAY_ABSOLUTE_TIMEOUT", default_value = "12h", value_parser = parse_duration)]
    pub absolute_timeout: Duration,

    /// When the console stops, how long a run's current step may take to finish before the
    /// run is marked interrupted.
    #[arg(long, env = "SLIPWAY_RUN_GRACE", default_value = "2m", value_parser = parse_duration)]
    pub run_grace: Duration,

    /// The pause before a notification that failed is sent again; it doubles with each
    /// further attempt, up to ten minutes.
    #[arg(long, env = "SLIPWAY_NOTIFICATION_RETRY", default_value = "5s", value_parser = parse_duration)]
    pub notification_retry: Duration,

    /// Attempts at a notification before it is given up on (the default's last comes about
    /// half an hour after the first).
    #[arg(long, env = "SLIPWAY_NOTIFICATION_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=50))]
    pub notification_attempts: i64,

    /// How long a receiver may take to answer one notification.
    #[arg(long, env = "SLIPWAY_NOTIFICATION_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub notification_timeout: Duration,

    /// A file holding the bearer token (16 characters or more) that `GET /metrics` asks for;
    /// without one the metrics endpoint is off.
    #[arg(long, env = "SLIPWAY_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,

    /// Built web assets (CSS, WASM); by default `site` next to the binary's target folder.
    #[arg(long, env = "SLIPWAY_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
}

fn parse_listen_addr(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| {
        "expected an IP address and port such as 127.0.0.1:3000 (set with --addr or SLIPWAY_ADDR)"
            .to_owned()
    })
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err("expected a duration such as 30m, 2h or 90s".to_owned()),
    }
}

fn parse_role(value: &str) -> Result<Role, String> {
    value.parse()
}

/// One line for a command-line mistake: clap's first line, without its own prefix.
pub fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let first = rendered
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("invalid command line");
    first.trim_start_matches("error: ").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_address_needs_a_port() {
        assert!(parse_listen_addr("127.0.0.1:3000").is_ok());
        let message = parse_listen_addr("localhost").unwrap_err();
        assert!(message.contains("127.0.0.1:3000"), "{message}");
    }

    #[test]
    fn a_bad_flag_is_reported_on_one_line_naming_the_value() {
        let error = Cli::try_parse_from(["slipway", "serve", "--addr", "nowhere"]).unwrap_err();
        let line = one_line(&error);
        assert!(
            line.contains("'nowhere'") && line.contains("--addr"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn timeouts_read_as_human_durations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn user_add_takes_a_role_by_name() {
        let cli =
            Cli::try_parse_from(["slipway", "user", "add", "ada", "--role", "approver"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::User(UserCommand::Add {
                role: Role::Approver,
                ..
            })
        ));
        let error =
            Cli::try_parse_from(["slipway", "user", "add", "ada", "--role", "root"]).unwrap_err();
        assert!(one_line(&error).contains("viewer, operator, approver or admin"));
    }
}
