//! The `strata` binary; see the `strata` library crate.

fn main() -> std::process::ExitCode {
    strata::cli::main()
}
