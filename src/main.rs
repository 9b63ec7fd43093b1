//! `containerd-stack`: turns pinned upstream releases of containerd, runc, the CNI plugins
//! and crictl into reproducible Debian packages, and publishes them into a signed apt
//! repository. A tiny main: the command line is in `cli`, the work in the library; an
//! error is printed as one line with its causes, and a hint where one is known.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, joined by ": ", then what to do about it
            // where that is known. The library's messages never name a flag; the hints do.
            let mut line = containerd_stack::error::one_line(&format!("{e:#}")).into_owned();
            if let Some(hint) = cli::hint(&e) {
                line.push_str("; ");
                line.push_str(&hint);
            }
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}
