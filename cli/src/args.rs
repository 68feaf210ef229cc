//! What `sb` understands. Every global flag has an environment twin.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sb",
    version,
    about = "Switchboard from a terminal or a script."
)]
pub struct Args {
    /// Gateway address [default: the saved login's; for register and login,
    /// http://127.0.0.1:7300].
    #[arg(long, env = "SB_SERVER", global = true)]
    pub server: Option<String>,
    /// Which saved login to use (several users can be logged in side by side).
    #[arg(long, env = "SB_PROFILE", default_value = "default", global = true)]
    pub profile: String,
    /// Where logins and cursors are saved (default: ~/.config/switchboard).
    #[arg(long, env = "SB_HOME", global = true)]
    pub home: Option<PathBuf>,
    /// Print one JSON object per line instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The gateway `register` and `login` use when none is named.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7300";

impl Args {
    /// The gateway to reach: the one named, else the saved login's, else
    /// the default.
    pub fn server_or(&self, saved: Option<&str>) -> String {
        self.server
            .as_deref()
            .or(saved)
            .unwrap_or(DEFAULT_SERVER)
            .to_owned()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account.
    Register {
        user: String,
        /// Or SB_PASSWORD; without either, asked for on a terminal (typing
        /// hidden) or read from standard input's first line.
        #[arg(long, env = "SB_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Log in and save the session for the following commands.
    Login {
        user: String,
        /// Or SB_PASSWORD; without either, asked for on a terminal (typing
        /// hidden) or read from standard input's first line.
        #[arg(long, env = "SB_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Device name (default: cli-<random>).
        #[arg(long)]
        device: Option<String>,
    },
    /// End the saved session.
    Logout,
    /// Who the saved session belongs to.
    Whoami,
    /// Send a message to a user, a group (--group) or a conversation (--conversation).
    Send {
        /// A user id (or a group id with --group, a conversation id with --conversation).
        to: String,
        /// The text; several words are joined with spaces.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        #[arg(long, conflicts_with = "conversation")]
        group: bool,
        #[arg(long)]
        conversation: bool,
        /// Client message id (default: a new one, printed). An unanswered
        /// send is retried with it; a retry with the same id is stored once.
        #[arg(long)]
        id: Option<String>,
    },
    /// Print live events; resumes from the saved cursors and reconnects on its own.
    Watch {
        /// Exit once caught up (after the replay).
        #[arg(long)]
        until_synced: bool,
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<usize>,
        /// Forget saved cursors: start live from now (a profile's first
        /// watch otherwise starts with what is unread).
        #[arg(long)]
        from_now: bool,
    },
    /// Page a conversation's history (newest first page by default).
    History {
        /// A conversation id, a user id, or a group id.
        conversation: String,
        #[arg(long)]
        before: Option<u64>,
        #[arg(long)]
        after: Option<u64>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Every conversation with its unread count and latest message.
    Conversations,
    /// Mark a conversation read up to a seq (default: everything).
    Read {
        conversation: String,
        seq: Option<u64>,
    },
    /// Read cursors of everyone in a conversation.
    Receipts { conversation: String },
    /// Contacts.
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Groups.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// One-to-many topics: send once, each contact privately.
    #[command(subcommand)]
    Topics(TopicsCommand),
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// My topics with their contacts and each contact's state.
    List,
    /// Create a topic and bind contacts (mutual contacts only).
    Create {
        name: String,
        #[arg(long, value_delimiter = ',')]
        contacts: Vec<String>,
    },
    Rename {
        topic: String,
        name: String,
    },
    /// Close a topic; its history stays readable.
    Delete {
        topic: String,
    },
    /// Bind more contacts.
    Add {
        topic: String,
        #[arg(required = true, num_args = 1..)]
        users: Vec<String>,
    },
    /// Unbind contacts: forwarding stops at once.
    Remove {
        topic: String,
        #[arg(required = true, num_args = 1..)]
        users: Vec<String>,
    },
    /// Send once: a private copy to every bound contact (or some).
    Send {
        topic: String,
        /// The text (may be empty with --forward: the original's is used).
        #[arg(num_args = 0..)]
        text: Vec<String>,
        /// Only these contacts (comma-separated).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Only those who have not read this broadcast.
        #[arg(long, conflicts_with = "not_replied")]
        not_read: Option<String>,
        /// Only those who have not replied to this broadcast.
        #[arg(long)]
        not_replied: Option<String>,
        /// Copy and resend this message (from any thread of the topic).
        #[arg(long)]
        forward: Option<String>,
        #[arg(long)]
        id: Option<String>,
    },
    /// The owner answers one contact inside the topic.
    Answer {
        topic: String,
        contact: String,
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// A contact replies in their dialog of the topic.
    Reply {
        topic: String,
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// The merged timeline: each broadcast once, and every reply.
    Timeline {
        topic: String,
        #[arg(long)]
        before: Option<u64>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Delivered, read and replied per contact, for one broadcast.
    Status {
        topic: String,
        broadcast: String,
    },
    /// A contact leaves a topic they are in.
    Leave {
        topic: String,
    },
    /// A contact mutes a topic (--off to unmute).
    Mute {
        topic: String,
        #[arg(long)]
        off: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Contacts (with presence for mutual ones) and contact requests.
    List,
    Add {
        user: String,
    },
    Remove {
        user: String,
    },
}

/// What a group's new members can read.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum HistoryArg {
    All,
    FromJoin,
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// My groups and invitations.
    List,
    Create {
        name: String,
        /// Only invited users may join.
        #[arg(long)]
        invite_only: bool,
        /// What new members can read: all (everything) or from-join (only
        /// from their joining). Default: all for open groups, from-join for
        /// invite-only ones.
        #[arg(long)]
        history: Option<HistoryArg>,
        /// Users to invite (comma-separated).
        #[arg(long, value_delimiter = ',')]
        invite: Vec<String>,
    },
    Join {
        group: String,
    },
    Invite {
        group: String,
        user: String,
    },
    Leave {
        group: String,
    },
    /// Remove a member (owner or admin).
    Remove {
        group: String,
        user: String,
    },
    /// Make a member an admin, or an admin a member (owner only).
    Role {
        group: String,
        user: String,
        #[arg(value_parser = ["admin", "member"])]
        role: String,
    },
    Members {
        group: String,
    },
}
