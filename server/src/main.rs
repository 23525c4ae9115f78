//! `slipway`: parses the command line, sets up logging and runs the chosen command.
//! Any failure ends as one line on stderr and a non-zero exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use app::runs::{Operation, RunOptions, RunRequest};
use clap::Parser;
use server::cli::{
    one_line, ApprovalCommand, AuditCommand, Cli, Command, ReleaseCommand, StackCommand,
    UserCommand,
};
use server::commands::{
    add_stack, add_user, approval_policy, audit_head, backup_policy, compose_config,
    create_release, init_audit_key, list_approvals, list_backups, list_flags, managed_edge,
    print_delivery, print_history, print_logs, release_policy, release_templates, request_approval,
    request_rollback, run_operation, ship_release, show_release, stack_config, stack_profiles,
    stack_status, tick_release, verify_audit, wait_for_approval, LogsRequest, PolicyChange,
    ReleasePolicyChange, RollbackChoice,
};
use server::startup::StartupError;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            eprintln!("slipway: {}", one_line(&error));
            return ExitCode::from(2);
        }
    };
    if let Err(error) = init_logging(&cli.command) {
        eprintln!("slipway: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("slipway: cannot start the async runtime ({error})");
            return ExitCode::FAILURE;
        }
    };
    // `slipway health` prints its report when a check fails too, then exits 1.
    let mut unhealthy = false;
    let outcome: Result<Option<String>, String> = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => server::serve::serve(args)
                .await
                .map(|()| None)
                .map_err(|e| e.to_string()),
            Command::User(UserCommand::Add { name, role, store }) => add_user(&name, role, &store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Audit(AuditCommand::Verify { head, store }) => verify_audit(
                &store,
                head.as_ref().map(|(seq, hash)| (*seq, hash.as_str())),
            )
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
            Command::Audit(AuditCommand::Head { store }) => audit_head(&store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Audit(AuditCommand::InitKey { store }) => init_audit_key(&store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Stack(StackCommand::Add {
                name,
                compose,
                env_file,
                project,
                store,
            }) => add_stack(
                &name,
                &compose,
                env_file.as_deref(),
                project.as_deref(),
                &store,
            )
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
            Command::Logs {
                name,
                service,
                follow,
                errors,
                tail,
                store,
            } => {
                let request = LogsRequest {
                    name: &name,
                    service: service.as_deref(),
                    follow,
                    errors_only: errors,
                    tail,
                };
                print_logs(request, &store)
                    .await
                    .map(|_| None)
                    .map_err(|e| e.to_string())
            }
            Command::Verify {
                name,
                backup,
                store,
            } => run_operation(
                &name,
                RunRequest {
                    operation: Operation::Verify,
                    target: backup,
                    options: RunOptions::default(),
                },
                &store,
            )
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
            Command::Backup { name, why, store } => run_operation(
                &name,
                RunRequest {
                    operation: Operation::Backup,
                    target: String::new(),
                    options: RunOptions {
                        why,
                        ..RunOptions::default()
                    },
                },
                &store,
            )
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
            Command::Restore {
                name,
                backup,
                reason,
                as_user,
                force,
                recorded_images,
                store,
            } => {
                let request = RunRequest {
                    operation: Operation::Restore,
                    target: backup,
                    options: RunOptions {
                        force,
                        recorded_images,
                        ..RunOptions::default()
                    },
                };
                request_approval(&name, request, (&as_user, &reason), &store)
                    .await
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Command::Rollback {
                name,
                to,
                undo_migrations,
                emergency,
                reason,
                as_user,
                store,
            } => request_rollback(
                &name,
                RollbackChoice {
                    to,
                    undo_migrations,
                    emergency,
                },
                (&as_user, &reason),
                &store,
            )
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
            Command::Release(ReleaseCommand::Create {
                name,
                version,
                sets,
                at,
                owner,
                run,
                notes,
                store,
            }) => create_release(
                &name,
                (&version, &sets, at.as_deref()),
                (&owner, &run, &notes),
                &store,
            )
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
            Command::Release(ReleaseCommand::Show { id, json, store }) => {
                show_release(&id, json, &store)
                    .await
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Command::Release(ReleaseCommand::Tick {
                id,
                item,
                undo,
                note,
                as_user,
                store,
            }) => tick_release((&id, &item), (undo, &note), &as_user, &store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Release(ReleaseCommand::Ship {
                id,
                override_reason,
                as_user,
                store,
            }) => ship_release(&id, (&override_reason, as_user.as_deref()), &store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Stack(StackCommand::Templates {
                name,
                checklist,
                timeline,
                store,
            }) => release_templates(&name, (checklist, timeline), &store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Stack(StackCommand::Releases {
                name,
                only,
                time_zone,
                days,
                hours,
                freezes,
                public_url,
                store,
            }) => release_policy(
                &name,
                ReleasePolicyChange {
                    only,
                    time_zone,
                    days,
                    hours,
                    freezes,
                    public_url,
                },
                &store,
            )
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
            Command::Flags { name, json, store } => list_flags(&name, json, &store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Flag {
                name,
                flag,
                value,
                store,
            } => run_operation(
                &name,
                RunRequest {
                    operation: Operation::Flag,
                    target: flag,
                    options: RunOptions {
                        flag_value: value.trim().to_owned(),
                        ..RunOptions::default()
                    },
                },
                &store,
            )
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
            Command::Approvals { json, store } => list_approvals(json, &store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Approval(ApprovalCommand::Wait { id, store }) => {
                wait_for_approval(&id, &store)
                    .await
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Command::History {
                stack,
                operation,
                outcome,
                person,
                since,
                until,
                version,
                csv,
                store,
            } => {
                let filter = app::history::HistoryFilter {
                    stack,
                    operation,
                    outcome,
                    person,
                    since,
                    until,
                    version,
                    before: String::new(),
                };
                print_history(&filter, csv, &store)
                    .await
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Command::Channel(command) => server::commands::channel(command)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Delivery { stack, store } => print_delivery(&stack, &store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Config {
                compose,
                env_file,
                profile,
                project,
                unmasked,
            } => compose_config(&compose, env_file.as_deref(), &profile, project, unmasked)
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Stack(StackCommand::Config { name, store }) => stack_config(&name, &store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Health { name, json, store } => {
                server::commands::health_report(&name, json, &store)
                    .await
                    .map(|(report, healthy)| {
                        unhealthy = !healthy;
                        Some(report)
                    })
                    .map_err(|e| e.to_string())
            }
            Command::Stack(StackCommand::Health {
                name,
                every,
                watch,
                on_failed_verification,
                store,
            }) => server::commands::health_policy(
                &name,
                server::commands::HealthPolicyChange {
                    every,
                    watch,
                    on_failed_verification,
                },
                &store,
            )
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
            Command::Stack(StackCommand::Profiles { name, set, store }) => {
                stack_profiles(&name, set, &store)
                    .await
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Command::Stack(StackCommand::Edge {
                name,
                managed,
                store,
            }) => managed_edge(&name, managed, &store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Stack(StackCommand::Approvals {
                name,
                required,
                expires,
                gate_changes,
                store,
            }) => approval_policy(&name, (required, expires, gate_changes), &store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Stack(StackCommand::Policy {
                name,
                backup_every,
                keep_last,
                keep_daily,
                keep_weekly,
                backup_before_update,
                store,
            }) => {
                let change = PolicyChange {
                    every_seconds: backup_every,
                    keep_last,
                    keep_daily,
                    keep_weekly,
                    before_update: backup_before_update,
                };
                backup_policy(&name, change, &store)
                    .await
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Command::Run(run) => {
                let (operation, args) = run.operation();
                run_operation(&args.name, operation.into(), &args.store)
                    .await
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Command::Backups { name, json, store } => list_backups(&name, json, &store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            Command::Status { name, json, store } => stack_status(&name, json, &store)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    });
    match outcome {
        Ok(message) => {
            if let Some(message) = message {
                println!("{message}");
            }
            if unhealthy {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(message) => {
            eprintln!("slipway: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; one-shot commands log only warnings unless RUST_LOG says otherwise.
fn init_logging(command: &Command) -> Result<(), StartupError> {
    let default = match command {
        Command::Serve(_) => "info,tower_http=warn",
        _ => "warn",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) => {
            EnvFilter::try_new(&spec).map_err(|e| StartupError::LogFilter(e.to_string()))?
        }
        Err(_) => EnvFilter::new(default),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}
