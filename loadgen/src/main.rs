fn main() -> std::process::ExitCode {
    switchboard_loadgen::main()
}
