//! The `sb` binary, for tests to run as a child process.
fn main() -> std::process::ExitCode {
    switchboard_cli::main()
}
