//! The `switchboard` binary, for tests to start as a child process.
fn main() -> std::process::ExitCode {
    switchboard_server::main()
}
