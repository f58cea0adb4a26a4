//! `commitments`: the command line of the tracker.
//!
//! `main` parses the arguments, runs one command inside `catch_unwind` and turns the outcome
//! into an exit code (see `docs/cli.md`). Every command opens the store, works, and drops it
//! before printing, so other processes are kept waiting as briefly as possible.

mod args;
mod cmd;
mod ctx;
mod error;
mod input;
mod table;

use std::ffi::OsString;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;
use crate::ctx::Ctx;
use crate::error::{code, CliError};

/// mimalloc: parsing, validating and folding events allocate many small strings; the system
/// allocator was a third of an import's profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Global options that take a value (to find the command word when rewriting `record --json`).
const VALUED_GLOBALS: &[&str] = &[
    "--store",
    "--color",
    "--as-of",
    "--known-at",
    "--lock-timeout",
    "--horizon-days",
];

/// `record --json '{...}'` is the catalogue's spelling of "the event as JSON", while `--json`
/// everywhere else means "JSON output". Rewrites `--json VALUE` after the `record` command word
/// into `--event VALUE` when VALUE is not a flag or an event type (so `record --json TYPE ...`
/// still means JSON output).
fn rewrite_record_json(args: Vec<OsString>) -> Vec<OsString> {
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a == "--" {
            return args;
        }
        if a.starts_with('-') {
            if VALUED_GLOBALS.contains(&a.as_ref()) {
                i += 1;
            }
            i += 1;
            continue;
        }
        break;
    }
    if i >= args.len() || args[i] != "record" {
        return args;
    }
    let mut out: Vec<OsString> = args[..=i].to_vec();
    let mut rest = args[i + 1..].iter().peekable();
    while let Some(a) = rest.next() {
        if a == "--" {
            out.push(a.clone());
            out.extend(rest.cloned());
            break;
        }
        let s = a.to_string_lossy();
        if let Some(v) = s.strip_prefix("--json=") {
            out.push("--event".into());
            out.push(v.into());
            continue;
        }
        if s == "--json" {
            if let Some(next) = rest.peek() {
                let n = next.to_string_lossy();
                let is_flag = n.starts_with('-') && n != "-";
                if !is_flag && cmd::record::type_name(&n).is_none() {
                    out.push("--event".into());
                    out.push((*next).clone());
                    rest.next();
                    continue;
                }
            }
        }
        out.push(a.clone());
    }
    out
}

fn run(cli: Cli) -> Result<(), CliError> {
    let mut ctx = Ctx::new(&cli.global)?;
    cmd::run(&mut ctx, cli.command)
}

fn main() -> ExitCode {
    panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("internal error: {msg}{at}");
        eprintln!("  this is a bug in commitments; please report it");
    }));

    let args = rewrite_record_json(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(match e.exit_code() {
                0 => code::OK,
                _ => code::USAGE,
            });
        }
    };

    let outcome = panic::catch_unwind(AssertUnwindSafe(|| run(cli)));
    match outcome {
        Ok(Ok(())) => ExitCode::from(code::OK),
        Ok(Err(e)) if e.is_broken_pipe() => ExitCode::from(code::OK),
        Ok(Err(e)) => {
            let lines = e.render();
            let mut it = lines.iter();
            if let Some(first) = it.next() {
                eprintln!("error: {first}");
            }
            for l in it {
                eprintln!("{l}");
            }
            ExitCode::from(e.exit_code())
        }
        Err(_) => ExitCode::from(code::INTERNAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(v: &[&str]) -> Vec<String> {
        rewrite_record_json(v.iter().map(OsString::from).collect())
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn record_json_value_becomes_event() {
        assert_eq!(
            rw(&["c", "--store", "s", "-q", "record", "--json", "{}"]),
            ["c", "--store", "s", "-q", "record", "--event", "{}"]
        );
        assert_eq!(
            rw(&["c", "record", "--json={}"]),
            ["c", "record", "--event", "{}"]
        );
        assert_eq!(
            rw(&["c", "record", "--json", "call-held", "--call-id", "x"]),
            ["c", "record", "--json", "call-held", "--call-id", "x"]
        );
        assert_eq!(
            rw(&["c", "record", "call-held", "--json", "--call-id", "x"]),
            ["c", "record", "call-held", "--json", "--call-id", "x"]
        );
        assert_eq!(
            rw(&["c", "list", "--json", "x"]),
            ["c", "list", "--json", "x"]
        );
    }
}
