//! The config file, and `genconfig`, which writes one.
//!
//! A config file is TOML whose keys are the flags' long names
//! (`nats-url = "nats://nats:4222"`). Keys at the top apply to every role
//! that has the setting; a `[gateway]`, `[router]`, `[presence]` or
//! `[standalone]` table applies to that role alone and wins over the top.
//! A file's values become the settings' defaults before the command line is
//! read, so flags win over the environment, the environment over the file,
//! and the file over the built-in defaults, with one parser for all four.
//! A key no role knows, or one a role's table names that the role lacks,
//! is an error: a misspelt setting must not be silently ignored.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Arg, Command};

use crate::cli::RoleName;

/// The file's name, if the command line or `SB_CONFIG` gives one. Read
/// before clap parses, because its values shape the parser.
pub fn path_in(args: &[OsString], env: Option<OsString>) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    env.filter(|path| !path.is_empty()).map(PathBuf::from)
}

/// `command` with the file's values as its settings' defaults.
pub fn apply_file(command: Command, path: &Path) -> anyhow::Result<Command> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    apply(command, &text).with_context(|| format!("config file {}", path.display()))
}

/// A setting as the strings clap parses, the way they would be typed: one,
/// or for a setting that takes a list, each item.
fn value_texts(key: &str, value: &toml::Value, list: bool) -> anyhow::Result<Vec<String>> {
    let scalar = |value: &toml::Value| -> anyhow::Result<String> {
        Ok(match value {
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Array(_) if !list => anyhow::bail!("`{key}` takes one value, not a list"),
            toml::Value::Array(_) => anyhow::bail!("`{key}` is a list of plain values"),
            toml::Value::Table(_) => anyhow::bail!("`{key}` is a setting, not a table"),
        })
    };
    match value {
        toml::Value::Array(items) if list => items.iter().map(scalar).collect(),
        value => scalar(value).map(|text| vec![text]),
    }
}

/// The settings `command` takes a value for, by long name.
fn setting<'a>(command: &'a Command, key: &str) -> Option<&'a Arg> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(key) && arg.get_action().takes_values())
}

/// Makes `key = value` the default of `command`'s setting, if it has it.
fn set_default(
    command: Command,
    key: &str,
    value: &toml::Value,
) -> anyhow::Result<(Command, bool)> {
    let Some(arg) = setting(&command, key) else {
        return Ok((command, false));
    };
    let list = arg.get_value_delimiter().is_some();
    let texts = value_texts(key, value, list)?;
    let id = arg.get_id().clone();
    let command = command.mut_arg(id, |arg| arg.default_values(texts).required(false));
    Ok((command, true))
}

/// The commands a role's settings live on: its subcommand, and for
/// standalone the top level too (no subcommand means standalone).
fn role_commands(role: RoleName) -> &'static [Option<&'static str>] {
    match role {
        RoleName::Standalone => &[None, Some("standalone")],
        RoleName::Gateway => &[Some("gateway")],
        RoleName::Router => &[Some("router")],
        RoleName::Presence => &[Some("presence")],
    }
}

/// Applies `key = value` to the top-level command (`None`) or a subcommand;
/// whether it had the setting.
fn apply_one(
    command: Command,
    at: Option<&str>,
    key: &str,
    value: &toml::Value,
) -> anyhow::Result<(Command, bool)> {
    match at {
        None => set_default(command, key, value),
        Some(name) => {
            let mut found = Ok(false);
            let command = command.mut_subcommand(name, |sub| {
                let (sub, had) = match set_default(sub.clone(), key, value) {
                    Ok(done) => done,
                    Err(err) => {
                        found = Err(err);
                        return sub;
                    }
                };
                found = Ok(had);
                sub
            });
            Ok((command, found?))
        }
    }
}

/// Forgets which flags require which: clap counts a default as absent when
/// it checks them, so a pair split between the file and the command line
/// would be refused. The services check their pairs themselves, whatever
/// the source (`TlsSettings::files`, `AppTokenSettings::load`).
fn without_requirements(command: Command) -> Command {
    let free = |arg: Arg| arg.requires(clap::builder::Resettable::<clap::Id>::Reset);
    command
        .mut_args(free)
        .mut_subcommands(|sub| sub.mut_args(free))
}

fn apply(command: Command, text: &str) -> anyhow::Result<Command> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let mut command = without_requirements(command);
    let roles = [
        RoleName::Standalone,
        RoleName::Gateway,
        RoleName::Router,
        RoleName::Presence,
    ];
    // The top first, so a role's table overrides it.
    let every: Vec<Option<String>> = std::iter::once(None)
        .chain(
            command
                .get_subcommands()
                .map(|sub| Some(sub.get_name().to_owned())),
        )
        .collect();
    for (key, value) in table.iter().filter(|(_, v)| !v.is_table()) {
        let mut known = false;
        for at in &every {
            let had;
            (command, had) = apply_one(command, at.as_deref(), key, value)?;
            known |= had;
        }
        if !known {
            anyhow::bail!("unknown setting `{key}` (`switchboard genconfig` lists them all)");
        }
    }
    for (name, value) in table.iter().filter(|(_, v)| v.is_table()) {
        let Some(role) = roles.iter().find(|role| role.as_str() == name) else {
            anyhow::bail!(
                "unknown table [{name}]: the tables are [standalone], [gateway], [router] and [presence]"
            );
        };
        let Some(settings) = value.as_table() else {
            continue;
        };
        for (key, value) in settings {
            let mut known = false;
            for at in role_commands(*role) {
                let had;
                (command, had) = apply_one(command, *at, key, value)?;
                known |= had;
            }
            if !known {
                anyhow::bail!(
                    "[{name}] has no setting `{key}` (`switchboard genconfig {name}` lists them)"
                );
            }
        }
    }
    Ok(command)
}

/// Wraps `text` into `# `-comment lines of at most `width` characters.
fn comment(out: &mut String, text: &str, width: usize) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            let _ = writeln!(out, "# {line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "# {line}");
    }
}

/// A default as TOML: numbers and booleans bare, lists as arrays, the rest
/// quoted.
fn toml_value(arg: &Arg, default: Option<String>) -> String {
    let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
    match (arg.get_value_delimiter(), default) {
        (Some(delimiter), default) => {
            let items: Vec<String> = default
                .iter()
                .flat_map(|d| d.split(delimiter))
                .filter(|item| !item.is_empty())
                .map(quote)
                .collect();
            format!("[{}]", items.join(", "))
        }
        (None, Some(text))
            if text.parse::<i64>().is_ok()
                || text.parse::<f64>().is_ok()
                || text == "true"
                || text == "false" =>
        {
            text
        }
        (None, Some(text)) => quote(&text),
        (None, None) => quote(""),
    }
}

/// A config file for `role` with every setting, its help, environment
/// twin and default, all commented out.
pub fn generate(command: &Command, role: RoleName) -> String {
    let at = match role {
        RoleName::Standalone => Some("standalone"),
        other => Some(other.as_str()),
    };
    let sub = at
        .and_then(|name| command.find_subcommand(name))
        .unwrap_or(command);
    let mut out = String::new();
    let name = role.as_str();
    let run = match role {
        RoleName::Standalone => "switchboard --config switchboard.toml".to_owned(),
        other => format!("switchboard --config switchboard.toml {}", other.as_str()),
    };
    let _ = writeln!(
        out,
        "# Switchboard {name} settings, written by `switchboard genconfig {name}`.\n\
         # Every setting is here at its default, commented out: uncomment what you change.\n\
         # Flags win over the environment, the environment over this file, this file over\n\
         # the defaults. Use it with `{run}`, or SB_CONFIG=switchboard.toml.\n\
         # One file can serve every role: keys at the top apply to each role that has them,\n\
         # a [gateway], [router], [presence] or [standalone] table to that role alone."
    );
    let globals = command
        .get_arguments()
        .filter(|arg| arg.is_global_set() && arg.get_long() != Some("config"));
    for arg in globals.chain(sub.get_arguments()) {
        let Some(long) = arg.get_long() else { continue };
        if !arg.get_action().takes_values() || arg.is_hide_set() {
            continue;
        }
        out.push('\n');
        if let Some(help) = arg.get_long_help().or(arg.get_help()) {
            let mut help = help.to_string();
            if !help.ends_with(['.', ')', ':']) {
                help.push('.');
            }
            comment(&mut out, &help, 86);
        }
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .map(|value| value.get_name().to_owned())
            .collect();
        if !possible.is_empty() {
            let _ = writeln!(out, "# One of: {}.", possible.join(", "));
        }
        if let Some(env) = arg.get_env() {
            let _ = writeln!(out, "# Environment: {}", env.to_string_lossy());
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|value| value.to_string_lossy().into_owned())
            .collect();
        let default = (!defaults.is_empty()).then(|| defaults.join(","));
        if arg.is_required_set() {
            let _ = writeln!(out, "# Required.");
        } else if default.is_none() && arg.get_value_delimiter().is_none() {
            let _ = writeln!(out, "# (no default)");
        }
        let _ = writeln!(out, "# {long} = {}", toml_value(arg, default));
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::FromArgMatches as _;

    use super::*;
    use crate::cli::{Cli, Mode};

    fn parse(file: &str, args: &[&str]) -> anyhow::Result<Cli> {
        let command = apply(crate::cli::command(), file)?;
        let matches = command.try_get_matches_from(args)?;
        Ok(Cli::from_arg_matches(&matches)?)
    }

    fn gateway(cli: Cli) -> crate::cli::GatewayRole {
        match cli.mode {
            Some(Mode::Gateway(role)) => role,
            other => panic!("not the gateway: {other:?}"),
        }
    }

    const SECRET: &str = "token-secret = \"0123456789abcdef0123456789abcdef\"\n";

    #[test]
    fn a_files_values_are_used_and_flags_win_over_them() {
        let file = format!(
            "{SECRET}nats-url = \"nats://from-file:4222\"\nrouter-timeout-ms = 3500\n\
             allowed-origins = \"https://app.example.com\"\n\
             [gateway]\ngateway-id = \"gw-7\"\nsend-rate = 2.5\n"
        );
        let role = gateway(parse(&file, &["switchboard", "gateway"]).unwrap());
        assert_eq!(role.nats.url, "nats://from-file:4222");
        assert_eq!(role.gateway.name, "gw-7");
        assert_eq!(
            role.gateway.router_timeout,
            std::time::Duration::from_millis(3500)
        );
        assert_eq!(role.gateway.limits.send_rate_per_second, 2.5);
        assert_eq!(role.secret.token_secret.len(), 32);

        let role = gateway(
            parse(
                &file,
                &["switchboard", "gateway", "--router-timeout-ms", "900"],
            )
            .unwrap(),
        );
        assert_eq!(
            role.gateway.router_timeout,
            std::time::Duration::from_millis(900)
        );
        assert_eq!(role.gateway.name, "gw-7");
    }

    #[test]
    fn a_roles_table_wins_over_the_top_and_applies_to_that_role_alone() {
        let file = format!(
            "{SECRET}gateway-id = \"everyone\"\n[gateway]\ngateway-id = \"only-gateways\"\n"
        );
        let role = gateway(parse(&file, &["switchboard", "gateway"]).unwrap());
        assert_eq!(role.gateway.name, "only-gateways");
        let standalone = parse(&file, &["switchboard"]).unwrap();
        assert_eq!(standalone.standalone.gateway.name, "everyone");
    }

    #[test]
    fn a_pair_of_settings_may_be_split_between_the_file_and_the_flags() {
        let file = format!("{SECRET}tls-key = \"/etc/tls.key\"\njwt-audience = \"sb\"\n");
        let role = gateway(
            parse(
                &file,
                &["switchboard", "gateway", "--tls-cert", "/etc/tls.crt"],
            )
            .unwrap(),
        );
        let files = role.gateway.tls.files().unwrap().unwrap();
        assert_eq!(files.key, PathBuf::from("/etc/tls.key"));
        // Half a pair is still refused, by the service that needs both.
        let half = gateway(parse(&file, &["switchboard", "gateway"]).unwrap());
        assert!(half.gateway.tls.files().is_err());
    }

    #[test]
    fn lists_are_arrays_or_comma_separated() {
        let file = format!("{SECRET}token-secrets-previous = [\"a\", \"b\"]\n");
        let role = gateway(parse(&file, &["switchboard", "gateway"]).unwrap());
        assert_eq!(role.secret.token_secrets_previous, ["a", "b"]);
    }

    #[test]
    fn mistakes_in_a_file_are_named() {
        let err = |file: &str| format!("{:#}", parse(file, &["switchboard"]).unwrap_err());
        assert!(err("nats-ulr = \"x\"").contains("unknown setting `nats-ulr`"));
        assert!(err("[gateways]\nx = 1").contains("unknown table [gateways]"));
        assert!(err("[presence]\nsend-rate = 1").contains("[presence] has no setting `send-rate`"));
        assert!(err("send-rate = [1, 2]").contains("takes one value"));
        assert!(err("send-rate = ").contains("not valid TOML"));
        // A value of the wrong kind fails as it would on the command line.
        let bad = parse("send-rate = \"fast\"", &["switchboard"]).unwrap_err();
        assert!(bad.to_string().contains("fast"), "{bad}");
    }

    #[test]
    fn the_path_comes_from_the_command_line_then_the_environment() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        let env = Some(OsString::from("/etc/env.toml"));
        assert_eq!(
            path_in(
                &args(&["sb", "gateway", "--config", "/a.toml"]),
                env.clone()
            ),
            Some(PathBuf::from("/a.toml"))
        );
        assert_eq!(
            path_in(&args(&["sb", "--config=/b.toml", "router"]), env.clone()),
            Some(PathBuf::from("/b.toml"))
        );
        assert_eq!(
            path_in(&args(&["sb", "gateway"]), env),
            Some(PathBuf::from("/etc/env.toml"))
        );
        assert_eq!(path_in(&args(&["sb"]), None), None);
    }

    /// The settings lines of a generated file, uncommented.
    fn uncommented(text: &str) -> String {
        let mut file = String::new();
        for line in text.lines() {
            let Some((key, value)) = line.strip_prefix("# ").and_then(|l| l.split_once(" = "))
            else {
                continue;
            };
            let is_key = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if is_key && value != "\"\"" {
                file.push_str(&format!("{key} = {value}\n"));
            }
        }
        file
    }

    #[test]
    fn a_generated_file_uncommented_gives_the_defaults() {
        let secret = ["--token-secret", "0123456789abcdef0123456789abcdef"];
        for (role, args) in [
            (RoleName::Standalone, vec!["switchboard"]),
            (
                RoleName::Gateway,
                [&["switchboard", "gateway"][..], &secret].concat(),
            ),
            (
                RoleName::Router,
                [&["switchboard", "router"][..], &secret].concat(),
            ),
            (RoleName::Presence, vec!["switchboard", "presence"]),
        ] {
            let text = generate(&crate::cli::command(), role);
            assert!(text.contains("# Environment: "), "{text}");
            let file = uncommented(&text);
            assert!(file.lines().count() > 5, "{role:?}: {file}");
            let from_file = parse(&file, &args).unwrap();
            let built_in = parse("", &args).unwrap();
            let effective = |cli: &Cli| match role {
                RoleName::Standalone => format!("{:?}", cli.standalone),
                _ => format!("{:?}", cli.mode),
            };
            assert_eq!(effective(&from_file), effective(&built_in), "{role:?}");
        }
    }
}
