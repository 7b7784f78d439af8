//! The `psvc` command-line tool; see `psvc --help` and [`psvc_actors::cli`].

fn main() -> std::process::ExitCode {
    psvc_actors::cli::run(std::env::args_os())
}
