//! The command line as operators meet it: `--help` of every role against a
//! snapshot (a changed flag, default or help text shows up in review), and
//! every environment variable documented in docs/DEPLOY.md.
//!
//! After an intended change: `UPDATE_SNAPSHOTS=1 cargo nextest run -p
//! switchboard-server --test settings` and commit `server/tests/help.txt`.

use std::path::Path;

use clap::Command;
use switchboard_server::cli;

/// Every command, its subcommands after it.
fn commands(command: &Command) -> Vec<&Command> {
    std::iter::once(command)
        .chain(command.get_subcommands().flat_map(commands))
        .collect()
}

/// `--help` of each command, as a terminal shows it, with no environment
/// values (the test's environment must not change the text).
fn rendered_help() -> String {
    let hide = |arg: clap::Arg| arg.hide_env_values(true);
    let mut command = cli::command()
        .mut_args(hide)
        .mut_subcommands(|sub| sub.mut_args(hide));
    command.build();
    let mut out = format!("=== switchboard --help\n{}\n", command.render_long_help());
    for sub in command.get_subcommands_mut() {
        let name = sub.get_name().to_owned();
        out.push_str(&format!(
            "=== switchboard {name} --help\n{}\n",
            sub.render_long_help()
        ));
    }
    out
}

#[test]
fn help_matches_the_snapshot() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/help.txt");
    let help = rendered_help();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &help).unwrap();
    }
    let snapshot = std::fs::read_to_string(&path).unwrap_or_default();
    if snapshot != help {
        let first = snapshot
            .lines()
            .zip(help.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(snapshot.lines().count().min(help.lines().count()));
        panic!(
            "`--help` differs from server/tests/help.txt from line {}:\n  snapshot: {:?}\n  now:      {:?}\n\
             If the change is intended, run UPDATE_SNAPSHOTS=1 cargo nextest run -p switchboard-server --test settings",
            first + 1,
            snapshot.lines().nth(first),
            help.lines().nth(first)
        );
    }
}

#[test]
fn every_environment_variable_is_in_the_deploy_guide() {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/DEPLOY.md"))
            .unwrap();
    let command = cli::command();
    let mut missing: Vec<String> = commands(&command)
        .iter()
        .flat_map(|command| command.get_arguments())
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .filter(|env| !guide.contains(&format!("| `{env}` |")))
        .collect();
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "not in docs/DEPLOY.md's settings table: {missing:?}"
    );
}

#[test]
fn the_command_line_is_well_formed() {
    // clap's own checks: unique names and ids, valid defaults, requirements
    // that name real arguments.
    cli::command().debug_assert();
}
