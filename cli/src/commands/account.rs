use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Context as _;
use serde_json::json;
use switchboard_proto::pb::{self, account_service_client::AccountServiceClient};

use super::Session;
use crate::args::Args;
use crate::client;
use crate::output::Output;
use crate::profile::{self, Profile};

/// The password from the flag or SB_PASSWORD; else, on a terminal, asked
/// for with the typing hidden; else the first line of standard input.
fn password(given: Option<String>) -> anyhow::Result<String> {
    if let Some(password) = given {
        return Ok(password);
    }
    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        read_hidden(&stdin)?
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line
    };
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        anyhow::bail!("no password: pass --password, set SB_PASSWORD, or pipe it in");
    }
    Ok(password)
}

/// Turns the terminal's echo off (keeping the newline's), prompts on
/// standard error, reads a line, and puts the terminal back as it was.
#[allow(clippy::print_stderr)]
fn read_hidden(stdin: &std::io::Stdin) -> anyhow::Result<String> {
    use nix::sys::termios::{self, LocalFlags, SetArg};
    let saved = termios::tcgetattr(stdin).context("cannot read the terminal's settings")?;
    let mut hidden = saved.clone();
    hidden.local_flags.remove(LocalFlags::ECHO);
    hidden.local_flags.insert(LocalFlags::ECHONL);
    termios::tcsetattr(stdin, SetArg::TCSAFLUSH, &hidden)
        .context("cannot turn the terminal's echo off")?;
    eprint!("password: ");
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    termios::tcsetattr(stdin, SetArg::TCSAFLUSH, &saved)
        .context("cannot restore the terminal's settings")?;
    read.context("cannot read the password from the terminal")?;
    Ok(line)
}

pub async fn register(
    args: &Args,
    user: &str,
    given: Option<String>,
    name: &str,
    out: &Output,
) -> anyhow::Result<()> {
    let password = password(given)?;
    let mut accounts = AccountServiceClient::new(
        client::connect(&args.server_or(None), args.ca.as_deref()).await?,
    );
    let response = accounts
        .register(pb::RegisterRequest {
            user_id: user.to_owned(),
            password,
            display_name: name.to_owned(),
        })
        .await?
        .into_inner();
    let user = response.user.unwrap_or_default();
    out.print(
        json!({"registered": user.user_id, "display_name": user.display_name}),
        || {
            format!(
                "registered {} ({}); now: sb login {}",
                user.user_id, user.display_name, user.user_id
            )
        },
    );
    Ok(())
}

pub async fn login(
    args: &Args,
    user: &str,
    given: Option<String>,
    device: Option<String>,
    out: &Output,
) -> anyhow::Result<()> {
    let password = password(given)?;
    let mut accounts = AccountServiceClient::new(
        client::connect(&args.server_or(None), args.ca.as_deref()).await?,
    );
    let response = accounts
        .login(pb::LoginRequest {
            user_id: user.to_owned(),
            password,
            device_id: device_or_new(device),
        })
        .await?
        .into_inner();
    save_login(args, response, out)
}

fn device_or_new(device: Option<String>) -> String {
    device.unwrap_or_else(|| format!("cli-{}", switchboard_shared::ids::random_token(6)))
}

/// Logs in with an app's JWT (`AccountService.LoginWithToken`).
pub async fn login_app(
    args: &Args,
    given: Option<String>,
    device: Option<String>,
    out: &Output,
) -> anyhow::Result<()> {
    let token = match given {
        Some(token) => token,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the app token from standard input")?;
            line.trim().to_owned()
        }
    };
    if token.is_empty() {
        anyhow::bail!("no app token: pass --token, set SB_APP_TOKEN, or pipe it in");
    }
    let mut accounts = AccountServiceClient::new(
        client::connect(&args.server_or(None), args.ca.as_deref()).await?,
    );
    let response = accounts
        .login_with_token(pb::LoginWithTokenRequest {
            token,
            device_id: device_or_new(device),
        })
        .await?
        .into_inner();
    save_login(args, response, out)
}

/// Saves a new session as the profile's login and says so.
fn save_login(args: &Args, response: pb::LoginResponse, out: &Output) -> anyhow::Result<()> {
    let user_id = response.user.map(|u| u.user_id).unwrap_or_default();
    let saved = Profile {
        server: args.server_or(None),
        ca: args.ca.as_deref().map(std::path::absolute).transpose()?,
        user_id: user_id.clone(),
        token: response.token,
        session_id: response.session_id,
        device_id: response.device_id.clone(),
        expires_at_ms: response.expires_at_ms,
        ..Profile::default()
    };
    profile::save(args.home.as_deref(), &args.profile, &saved)?;
    out.print(
        json!({"logged_in": user_id, "device_id": response.device_id, "profile": args.profile}),
        || {
            format!(
                "logged in as {user_id} on device {} (profile {})",
                response.device_id, args.profile
            )
        },
    );
    Ok(())
}

pub async fn logout(mut session: Session, out: &Output) -> anyhow::Result<()> {
    let result = session.clients.accounts.logout(pb::LogoutRequest {}).await;
    profile::remove(session.home.as_deref(), &session.profile_name)?;
    result?;
    out.print(json!({"logged_out": session.profile.user_id}), || {
        format!("logged out {}", session.profile.user_id)
    });
    Ok(())
}

pub async fn rename(mut session: Session, name: &str, out: &Output) -> anyhow::Result<()> {
    let user = session
        .clients
        .accounts
        .update_profile(pb::UpdateProfileRequest {
            display_name: name.to_owned(),
        })
        .await?
        .into_inner()
        .user
        .unwrap_or_default();
    out.print(
        json!({"user_id": user.user_id, "display_name": user.display_name}),
        || format!("{} is now called {}", user.user_id, user.display_name),
    );
    Ok(())
}

pub fn whoami(args: &Args, out: &Output) -> anyhow::Result<()> {
    let saved = profile::load(args.home.as_deref(), &args.profile)?;
    out.print(
        json!({"user_id": saved.user_id, "device_id": saved.device_id, "server": saved.server}),
        || {
            format!(
                "{} on device {} at {}",
                saved.user_id, saved.device_id, saved.server
            )
        },
    );
    Ok(())
}
