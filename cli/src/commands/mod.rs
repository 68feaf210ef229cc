//! One file per group of commands; this one picks the command.

mod account;
mod admin;
mod chat;
mod contacts;
mod groups;
mod topics;
mod watch;

use std::path::PathBuf;

use crate::args::{Args, Command};
use crate::client::{self, Clients};
use crate::output::Output;
use crate::profile::{self, Profile};
use switchboard_proto::pb::send_request::To;

/// What every command that needs a login gets.
pub struct Session {
    pub clients: Clients,
    pub profile: Profile,
    pub profile_name: String,
    pub home: Option<PathBuf>,
}

impl Session {
    async fn open(args: &Args) -> anyhow::Result<Self> {
        let profile = profile::load(args.home.as_deref(), &args.profile)?;
        // A gateway named on the command line wins over the saved one for
        // this command (the same cluster behind another address).
        let channel = client::connect(
            &args.server_or(Some(&profile.server)),
            args.ca_or(profile.ca.as_deref()).as_deref(),
        )
        .await?;
        Ok(Self {
            clients: Clients::new(channel, &profile.token)?,
            profile,
            profile_name: args.profile.clone(),
            home: args.home.clone(),
        })
    }

    pub fn save(&self) -> anyhow::Result<()> {
        profile::save(self.home.as_deref(), &self.profile_name, &self.profile)
    }

    /// A conversation named on the command line: a conversation id as is
    /// (`dm:a:b`, `g:<group>`, `t:<topic>:<contact>`), or a user id for the
    /// direct conversation with that user.
    pub fn conversation(&self, name: &str) -> String {
        if name.contains(':') {
            return name.to_owned();
        }
        let me = self.profile.user_id.as_str();
        let peer = name.trim().to_ascii_lowercase();
        if me < peer.as_str() {
            format!("dm:{me}:{peer}")
        } else {
            format!("dm:{peer}:{me}")
        }
    }
}

pub async fn run(args: Args, out: &Output) -> anyhow::Result<()> {
    match &args.command {
        Command::Register {
            user,
            password,
            name,
        } => account::register(&args, user, password.clone(), name, out).await,
        Command::Login {
            user,
            password,
            device,
        } => account::login(&args, user, password.clone(), device.clone(), out).await,
        Command::LoginApp { token, device } => {
            account::login_app(&args, token.clone(), device.clone(), out).await
        }
        Command::Logout => account::logout(Session::open(&args).await?, out).await,
        Command::Whoami => account::whoami(&args, out),
        Command::Rename { name } => {
            account::rename(Session::open(&args).await?, &name.join(" "), out).await
        }
        Command::Send {
            to,
            text,
            group,
            conversation,
            id,
            reply_to,
        } => {
            let to = if *conversation {
                To::ConversationId(to.clone())
            } else if *group {
                To::GroupId(to.trim_start_matches("g:").to_owned())
            } else {
                To::UserId(to.clone())
            };
            let message = chat::Outgoing {
                to,
                text: text.join(" "),
                id: id.clone(),
                reply_to: reply_to.clone().unwrap_or_default(),
            };
            chat::send(Session::open(&args).await?, message, out).await
        }
        Command::Watch {
            until_synced,
            count,
            from_now,
        } => {
            watch::watch(
                Session::open(&args).await?,
                *until_synced,
                *count,
                *from_now,
                out,
            )
            .await
        }
        Command::History {
            conversation,
            before,
            after,
            limit,
        } => {
            chat::history(
                Session::open(&args).await?,
                conversation,
                *before,
                *after,
                *limit,
                out,
            )
            .await
        }
        Command::Conversations => chat::conversations(Session::open(&args).await?, out).await,
        Command::Read { conversation, seq } => {
            chat::read(Session::open(&args).await?, conversation, *seq, out).await
        }
        Command::Delete { message_id } => {
            chat::delete(Session::open(&args).await?, message_id, out).await
        }
        Command::Edit { message_id, text } => {
            chat::edit(
                Session::open(&args).await?,
                message_id,
                &text.join(" "),
                out,
            )
            .await
        }
        Command::React {
            message_id,
            emoji,
            off,
        } => chat::react(Session::open(&args).await?, message_id, emoji, !off, out).await,
        Command::Accept { conversation } => {
            chat::accept(Session::open(&args).await?, conversation, out).await
        }
        Command::Mute { conversation, off } => {
            chat::mute(Session::open(&args).await?, conversation, !off, out).await
        }
        Command::Reactions { message_id } => {
            chat::reactions(Session::open(&args).await?, message_id, out).await
        }
        Command::Search {
            words,
            conversation,
            limit,
            page,
        } => {
            let search = chat::Search {
                query: words.join(" "),
                conversation: conversation.clone(),
                limit: *limit,
                page: page.clone().unwrap_or_default(),
            };
            chat::search(Session::open(&args).await?, search, out).await
        }
        Command::Receipts { conversation } => {
            chat::receipts(Session::open(&args).await?, conversation, out).await
        }
        Command::Contacts(command) => {
            contacts::run(Session::open(&args).await?, command, out).await
        }
        Command::Groups(command) => groups::run(Session::open(&args).await?, command, out).await,
        Command::Topics(command) => topics::run(Session::open(&args).await?, command, out).await,
        Command::Admin(admin) => admin::run(&args, admin, out).await,
    }
}

/// A deletion goes ahead only with `--yes`: it cannot be undone.
pub(crate) fn confirmed(yes: bool, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(yes, "{what} and cannot be undone; add --yes to go ahead");
    Ok(())
}
