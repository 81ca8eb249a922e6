fn main() -> std::process::ExitCode {
    envd::cli::main()
}
