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
    /// PEM file of the certificate authority to trust for an https:// server
    /// besides the system's (a private CA, a self-signed gateway) [default:
    /// the saved login's].
    #[arg(long, env = "SB_CA", global = true)]
    pub ca: Option<PathBuf>,
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

    /// The CA to trust: the one named, else the saved login's.
    pub fn ca_or(&self, saved: Option<&std::path::Path>) -> Option<PathBuf> {
        self.ca.clone().or_else(|| saved.map(ToOwned::to_owned))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account.
    Register {
        /// The new account's user id: 3-32 of a-z, 0-9, `_`, `-`, `.`, starting
        /// with a letter or digit.
        user: String,
        /// Or SB_PASSWORD; without either, asked for on a terminal (typing
        /// hidden) or read from standard input's first line.
        #[arg(long, env = "SB_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Display name (default: none).
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Log in and save the session for the following commands.
    Login {
        /// The account's user id.
        user: String,
        /// Or SB_PASSWORD; without either, asked for on a terminal (typing
        /// hidden) or read from standard input's first line.
        #[arg(long, env = "SB_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Device name (default: cli-<random>).
        #[arg(long)]
        device: Option<String>,
    },
    /// Log in with a JWT your app's backend signed for its user (the
    /// deployment trusts the app: SB_JWT_*); the user is created on first use.
    LoginApp {
        /// Or SB_APP_TOKEN; without either, read from standard input's first line.
        #[arg(long, env = "SB_APP_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Device name (default: cli-<random>).
        #[arg(long)]
        device: Option<String>,
    },
    /// End the saved session.
    Logout,
    /// Who the saved session belongs to.
    Whoami,
    /// Change your display name (none: your user id).
    Rename {
        /// The new display name (at most 80 characters).
        #[arg(num_args = 0..)]
        name: Vec<String>,
    },
    /// Send a message to a user, a group (--group) or a conversation (--conversation).
    Send {
        /// A user id (or a group id with --group, a conversation id with --conversation).
        to: String,
        /// The text; several words are joined with spaces.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// <TO> is a group id.
        #[arg(long, conflicts_with = "conversation")]
        group: bool,
        /// <TO> is a conversation id (`dm:a:b`, `g:<group>`, `t:<topic>:<contact>`).
        #[arg(long)]
        conversation: bool,
        /// Client message id (default: a new one, printed). An unanswered
        /// send is retried with it; a retry with the same id is stored once.
        #[arg(long)]
        id: Option<String>,
        /// Answer this message of the same conversation (`<conversation>#<seq>`): it is quoted.
        #[arg(long)]
        reply_to: Option<String>,
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
        /// Messages before this seq (an older page).
        #[arg(long)]
        before: Option<u64>,
        /// Messages after this seq (a newer page).
        #[arg(long)]
        after: Option<u64>,
        /// Messages per page.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Every conversation with its unread count and latest message.
    Conversations,
    /// Mark a conversation read up to a seq (default: everything).
    Read {
        /// A conversation id, a user id, or a group id.
        conversation: String,
        /// Up to and including this seq (default: the latest).
        seq: Option<u64>,
    },
    /// Delete a message for everyone (yours; in a group you own or admin, anyone's).
    Delete {
        /// The message id (`<conversation>#<seq>`, as `history` and `watch` print it in --json).
        message_id: String,
    },
    /// Replace the text of one of your messages (within the server's edit window).
    Edit {
        /// The message id (`<conversation>#<seq>`).
        message_id: String,
        /// The new text.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// React to a message with an emoji (again with --off to take it back).
    React {
        /// The message id (`<conversation>#<seq>`).
        message_id: String,
        /// The emoji, e.g. 👍.
        emoji: String,
        /// Take the reaction back.
        #[arg(long)]
        off: bool,
    },
    /// Accept a message request: a chat someone not in your contacts started.
    Accept {
        /// A user id, or the conversation id.
        conversation: String,
    },
    /// Mute a chat or group on all your devices (again with --off to unmute):
    /// its messages still arrive, without notifications unless they mention you.
    Mute {
        /// A conversation id (`g:<group>` for a group), or a user id.
        conversation: String,
        /// Unmute it.
        #[arg(long)]
        off: bool,
    },
    /// Who reacted to a message, and with what.
    Reactions {
        /// The message id (`<conversation>#<seq>`).
        message_id: String,
    },
    /// Search your history by words (each matches a word's start), newest first.
    Search {
        /// The words to find; a message must have all of them.
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
        /// Only this conversation (a conversation id, a user id, or a group id).
        #[arg(long = "in")]
        conversation: Option<String>,
        /// Hits per page.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Go on from an earlier search's next page token.
        #[arg(long)]
        page: Option<String>,
    },
    /// Read cursors of everyone in a conversation.
    Receipts {
        /// A conversation id, a user id, or a group id.
        conversation: String,
    },
    /// Contacts.
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Groups.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// One-to-many topics: send once, each contact privately.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Administer users and groups (AdminService): with an admin credential,
    /// against a router's internal port (or a standalone server).
    Admin(AdminArgs),
}

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The admin secret (one of the routers' SB_ADMIN_TOKENS, without its name).
    #[arg(long, env = "SB_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Users whose id starts with a prefix (all, without one), a page at a time.
    Find {
        /// The start of the user ids to list.
        #[arg(default_value = "")]
        prefix: String,
        /// The last user id of the previous page.
        #[arg(long, default_value = "")]
        after: String,
        /// Users per page (1-500).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Ban a user: no login, every session ends, open streams close at once.
    Ban {
        /// The user id.
        user: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a ban.
    Unban {
        /// The user id.
        user: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Set a new password (or have one made up and printed); every session ends.
    ResetPassword {
        /// The user id.
        user: String,
        /// The new password (or SB_NEW_PASSWORD); without either, one is made up.
        #[arg(long, env = "SB_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// A user's live sessions: id, device, expiry.
    Sessions {
        /// The user id.
        user: String,
    },
    /// End some of a user's sessions (all, if none are named).
    Revoke {
        /// The user id.
        user: String,
        /// Session ids (from `sb admin sessions`); none: every one.
        sessions: Vec<String>,
    },
    /// Make a member the owner of a group (the owner before becomes an admin).
    TransferGroup {
        /// The group id.
        group: String,
        /// The member who becomes the owner.
        new_owner: String,
    },
    /// Delete an account for good: sessions end, groups and topics are left (or deleted,
    /// if theirs), contacts removed, and the text of every message they sent erased.
    DeleteUser {
        /// The user id.
        user: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Delete a group for good: members and invitations go, its history is erased.
    DeleteGroup {
        /// The group id.
        group: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// The audit log, newest first.
    Audit {
        /// Entries before this id (the last one of the previous page).
        #[arg(long, default_value = "")]
        before: String,
        /// Entries per page (1-500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// My topics with their contacts and each contact's state.
    List,
    /// Create a topic and bind contacts (mutual contacts only).
    Create {
        /// The topic's name, as its contacts see it.
        name: String,
        /// Contacts to bind (comma-separated).
        #[arg(long, value_delimiter = ',')]
        contacts: Vec<String>,
    },
    /// Rename a topic; its contacts see the new name.
    Rename {
        /// The topic's id.
        topic: String,
        /// The new name.
        name: String,
    },
    /// Close a topic; its history stays readable.
    Delete {
        /// The topic's id.
        topic: String,
    },
    /// Bind more contacts (fails if none could be bound).
    Add {
        /// The topic's id.
        topic: String,
        /// Mutual contacts to bind.
        #[arg(required = true, num_args = 1..)]
        users: Vec<String>,
    },
    /// Unbind contacts: forwarding stops at once (fails if none was bound).
    Remove {
        /// The topic's id.
        topic: String,
        /// Contacts to unbind.
        #[arg(required = true, num_args = 1..)]
        users: Vec<String>,
    },
    /// Send once: a private copy to every bound contact (or some).
    Send {
        /// The topic's id.
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
        /// Client message id: a retry with the same id is stored once.
        #[arg(long)]
        id: Option<String>,
    },
    /// The owner answers one contact inside the topic.
    Answer {
        /// The topic's id.
        topic: String,
        /// The contact whose thread it goes to.
        contact: String,
        /// The text; several words are joined with spaces.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// A contact replies in their dialog of the topic.
    Reply {
        /// The topic's id.
        topic: String,
        /// The text; several words are joined with spaces.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// The merged timeline: each broadcast once, and every reply.
    Timeline {
        /// The topic's id.
        topic: String,
        /// Entries before this timeline seq (an older page).
        #[arg(long)]
        before: Option<u64>,
        /// Entries per page.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Delivered, read and replied per contact, for one broadcast.
    Status {
        /// The topic's id.
        topic: String,
        /// The broadcast's id (as `topics send` printed it).
        broadcast: String,
    },
    /// A contact leaves a topic they are in.
    Leave {
        /// The topic's id.
        topic: String,
    },
    /// A contact mutes a topic (--off to unmute).
    Mute {
        /// The topic's id.
        topic: String,
        /// Unmute instead.
        #[arg(long)]
        off: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Contacts (with presence for mutual ones) and contact requests.
    List,
    /// Add a contact (mutual once they add you back).
    Add {
        /// Their user id.
        user: String,
    },
    /// Remove a contact.
    Remove {
        /// Their user id.
        user: String,
    },
    /// Block a user: no direct messages either way, no presence, no topics.
    Block {
        /// Their user id.
        user: String,
    },
    /// Unblock a user.
    Unblock {
        /// Their user id.
        user: String,
    },
    /// The users you blocked.
    Blocked,
    /// Find people: the user with exactly this id, and people you share a
    /// group with (or have as contacts) whose name or id starts with it.
    Find {
        /// An exact user id, or the start of a name or id.
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        /// At most this many (the server's default 20, at most 50).
        #[arg(long)]
        limit: Option<u32>,
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
    /// Create a group; you are its owner.
    Create {
        /// The group's name.
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
    /// Join an open group, or one you are invited to.
    Join {
        /// The group's id.
        group: String,
    },
    /// Invite a user (owner or admin).
    Invite {
        /// The group's id.
        group: String,
        /// Who to invite.
        user: String,
    },
    /// Leave a group.
    Leave {
        /// The group's id.
        group: String,
    },
    /// Remove a member (owner or admin).
    Remove {
        /// The group's id.
        group: String,
        /// The member to remove.
        user: String,
    },
    /// Make a member an admin, or an admin a member (owner only).
    Role {
        /// The group's id.
        group: String,
        /// The member.
        user: String,
        /// The new role.
        #[arg(value_parser = ["admin", "member"])]
        role: String,
    },
    /// Members and their roles.
    Members {
        /// The group's id.
        group: String,
    },
    /// Rename the group or change its description (owner or admin).
    Update {
        /// The group's id.
        group: String,
        /// The new name.
        #[arg(long, required_unless_present = "description")]
        name: Option<String>,
        /// The new description (empty clears it).
        #[arg(long)]
        description: Option<String>,
    },
    /// Hand the group to another member (owner only); you stay as an admin.
    Transfer {
        /// The group's id.
        group: String,
        /// The member who becomes the owner.
        user: String,
    },
    /// Delete the group for good: members go, its history is erased (owner only).
    Delete {
        /// The group's id.
        group: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    /// What lacks words in `--help`: commands without an about, arguments
    /// without help, by their path.
    fn undescribed(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if !matches!(id, "help" | "version") && arg.get_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in command.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_name() != "help" {
                missing.push(path.clone());
            }
            undescribed(sub, &path, missing);
        }
    }

    #[test]
    fn every_command_and_flag_says_what_it_does() {
        let mut missing = Vec::new();
        undescribed(&Args::command(), "sb", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }
}
