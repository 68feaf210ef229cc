//! The saved login and stream cursors of one profile, so commands chain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    pub server: String,
    /// The CA trusted for an https:// server, if not only the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<std::path::PathBuf>,
    pub user_id: String,
    pub token: String,
    pub session_id: String,
    pub device_id: String,
    pub expires_at_ms: i64,
    /// The store epoch the cursors belong to.
    #[serde(default)]
    pub epoch: String,
    /// Highest seq seen per conversation, for `watch` to resume from.
    #[serde(default)]
    pub cursors: BTreeMap<String, u64>,
}

pub fn directory(home: Option<&Path>) -> PathBuf {
    if let Some(home) = home {
        return home.to_owned();
    }
    if let Some(config) = std::env::var_os("XDG_CONFIG_HOME") {
        return PathBuf::from(config).join("switchboard");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".config").join("switchboard")
}

fn path(home: Option<&Path>, name: &str) -> PathBuf {
    directory(home).join(format!("{name}.json"))
}

pub fn load(home: Option<&Path>, name: &str) -> anyhow::Result<Profile> {
    let path = path(home, name);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "not logged in (no {}); run `sb login <user>`",
            path.display()
        )
    })?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is damaged; log in again", path.display()))
}

/// Writes the profile (readable by its owner only), replacing it atomically.
pub fn save(home: Option<&Path>, name: &str, profile: &Profile) -> anyhow::Result<()> {
    let path = path(home, name);
    let dir = directory(home);
    std::fs::create_dir_all(&dir)?;
    let temporary = dir.join(format!(".{name}.json.tmp"));
    std::fs::write(&temporary, serde_json::to_vec_pretty(profile)?)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&temporary, &path)?;
    Ok(())
}

pub fn remove(home: Option<&Path>, name: &str) -> anyhow::Result<()> {
    match std::fs::remove_file(path(home, name)) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
        _ => Ok(()),
    }
}
