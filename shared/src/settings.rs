//! What every service's settings are made of. Each setting is declared once,
//! on its service's config struct, with its flag, environment twin, default
//! and help (clap attributes); the binary reads flags, the environment and a
//! config file into it, and tests take [`defaults`].
//!
//! Durations are given in a whole unit named by the flag (`--router-timeout-ms
//! 2000`) and held as [`Duration`]s.

use std::time::Duration;

fn whole(text: &str, unit: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of {unit}"))
}

/// Parses milliseconds.
pub fn millis(text: &str) -> Result<Duration, String> {
    whole(text, "milliseconds").map(Duration::from_millis)
}

/// Parses microseconds.
pub fn micros(text: &str) -> Result<Duration, String> {
    whole(text, "microseconds").map(Duration::from_micros)
}

/// Parses seconds.
pub fn secs(text: &str) -> Result<Duration, String> {
    whole(text, "seconds").map(Duration::from_secs)
}

/// Parses hours.
pub fn hours(text: &str) -> Result<Duration, String> {
    whole(text, "hours").and_then(|h| {
        h.checked_mul(3600)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{h} hours is too long"))
    })
}

/// A config struct with every setting at its default: no flags, and the
/// environment not read (a test's environment must not change it).
///
/// # Panics
/// If a setting without a default is required: such a struct has no
/// defaults to give.
pub fn defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults"))
        .mut_args(|arg| arg.env(None::<&str>))
        .no_binary_name(true);
    let matches = command
        .try_get_matches_from(std::iter::empty::<&str>())
        .expect("every setting has a default");
    T::from_arg_matches(&matches).expect("the defaults parse")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_numbers_of_their_unit() {
        assert_eq!(millis("1500"), Ok(Duration::from_millis(1500)));
        assert_eq!(secs(" 3 "), Ok(Duration::from_secs(3)));
        assert_eq!(hours("2"), Ok(Duration::from_secs(7200)));
        assert_eq!(micros("0"), Ok(Duration::ZERO));
        assert_eq!(
            millis("1.5"),
            Err("`1.5` is not a whole number of milliseconds".into())
        );
        assert!(millis("-1").is_err());
        assert!(hours(&u64::MAX.to_string()).is_err());
    }

    #[derive(Debug, clap::Args)]
    struct Example {
        /// A wait.
        #[arg(long = "wait-ms", env = "SB_SETTINGS_TEST_WAIT_MS", default_value = "250", value_parser = millis)]
        wait: Duration,
    }

    #[test]
    fn defaults_are_the_declared_ones() {
        let example: Example = defaults();
        assert_eq!(example.wait, Duration::from_millis(250));
    }
}
