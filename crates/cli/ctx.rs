//! What every command shares: the resolved global flags, stdout, colour, progress bars and
//! opening the store (waiting while another process holds it).

use std::cell::Cell;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use commitments_projection::{ProjectionError, ReadAt, Tracker, TrackerOptions};
use commitments_store::{Store, StoreError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::args::{ColorWhen, Global};
use crate::error::{CliError, CliResult};
use crate::table::Table;

/// Test-only: hold the store this many milliseconds after opening it (documented in
/// docs/cli.md as a test hook; not shown in `--help`).
const HOLD_ENV: &str = "COMMITMENTS_TEST_HOLD_MS";

/// Test-only: panic right after opening the store (to test that no panic reaches the user).
const PANIC_ENV: &str = "COMMITMENTS_TEST_PANIC";

/// The resolved global settings.
#[derive(Debug)]
pub struct Ctx {
    /// The store directory.
    pub store: PathBuf,
    /// JSON on stdout.
    pub json: bool,
    /// Nothing on success.
    pub quiet: bool,
    /// Colour stdout.
    pub color: bool,
    /// The fixed clock from COMMITMENTS_NOW, if set.
    pub now: Option<DateTime<Utc>>,
    /// The date deadlines are judged against.
    pub as_of: NaiveDate,
    /// The record-time cut-off.
    pub known_at: Option<DateTime<Utc>>,
    /// Seconds to wait for a locked store.
    pub lock_timeout: f64,
    /// Policy horizon.
    pub horizon_days: u32,
    /// Who records.
    pub actor: String,
    /// Columns for tables (None = no limit).
    pub width: Option<usize>,
    stderr_tty: bool,
    /// Open with [`SMALL_CACHE`] (set by [`Ctx::open_whole_log`] and [`Ctx::open_bulk`]).
    small_cache: bool,
    out: io::BufWriter<io::Stdout>,
}

/// sled's page cache for a command that folds the whole log or writes a bulk of it (see
/// [`Ctx::open_whole_log`], [`Ctx::open_bulk`]).
const SMALL_CACHE: u64 = 16 * 1024 * 1024;

/// The size on disk from which `rebuild` and `verify` ask for small pages. Below it the whole
/// fold is small, and huge pages make the start faster: a 10k-event store (8 MiB) rebuilt in
/// 55 ms instead of 70 (medians of 12 alternating runs) at 86 MiB RSS instead of 37; a 100k
/// one (64 MiB) took as long either way, at 118 MiB instead of 72 (`docs/performance.md`).
const SMALL_PAGES_FROM: u64 = 32 << 20;

/// Asks the kernel not to back this process's memory with transparent huge pages (Linux;
/// elsewhere, and if the kernel refuses, nothing changes). For the commands that hold much
/// memory (`import`, `restore`, and `rebuild` and `verify` on a large store): partly used
/// 2 MiB pages added 30–60 MiB to their peaks, and the kernel zeroes every page first touched
/// (a 100k import went from 1.455 to 1.295 s, medians of 6, peak RSS 264 → 211 MiB; see
/// `docs/performance.md`). The other commands keep huge pages: at open sled touches ~23 MiB
/// of metrics, a dozen faults in huge pages and ~6,000 in small ones.
pub fn small_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

/// Asks the kernel to read all of `f` into the page cache now, in the background (Linux's
/// `posix_fadvise(WILLNEED)`; elsewhere, or if the kernel refuses, nothing changes), so that
/// a file read once from start to end is on its way while the first lines are processed
/// rather than fetched by the small readahead of each read. An import of a 100k-event file
/// that was not in the page cache took ~0.1 s longer than one of a cached file without it
/// (`docs/performance.md`). The advice is given on a thread of its own (for a large file
/// the kernel queues the reads before it returns), which the returned handle joins.
pub fn read_ahead(f: &std::fs::File) -> ReadAhead {
    #[cfg(target_os = "linux")]
    if let Ok(f) = f.try_clone() {
        return ReadAhead(
            std::thread::Builder::new()
                .name("read-ahead".into())
                .spawn(move || {
                    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
                    let _ = posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_WILLNEED);
                })
                .ok(),
        );
    }
    ReadAhead(None)
}

/// The thread [`read_ahead`] started, joined when dropped.
#[derive(Debug)]
pub struct ReadAhead(Option<std::thread::JoinHandle<()>>);

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}

fn env_nonempty(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

impl Ctx {
    /// Resolves the globals against the environment.
    pub fn new(g: &Global) -> CliResult<Ctx> {
        let store = g
            .store
            .clone()
            .or_else(|| env_nonempty("COMMITMENTS_STORE").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("commitments.db"));
        let now = match env_nonempty("COMMITMENTS_NOW") {
            Some(s) => Some(
                DateTime::parse_from_rfc3339(&s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        CliError::Usage(format!(
                            "COMMITMENTS_NOW=`{s}` is not an RFC 3339 timestamp: {e}"
                        ))
                    })?,
            ),
            None => None,
        };
        let as_of = g
            .as_of
            .unwrap_or_else(|| now.unwrap_or_else(Utc::now).date_naive());
        let stdout_tty = io::stdout().is_terminal();
        let color = match g.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => stdout_tty && env_nonempty("NO_COLOR").is_none(),
        };
        let width = if stdout_tty {
            terminal_size::terminal_size().map(|(w, _)| w.0 as usize)
        } else {
            env_nonempty("COLUMNS").and_then(|c| c.parse().ok())
        };
        let actor = env_nonempty("COMMITMENTS_ACTOR")
            .or_else(|| env_nonempty("USER"))
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(Ctx {
            store,
            json: g.json,
            quiet: g.quiet,
            color,
            now,
            as_of,
            // Catalogue section 5: `--known-at` defaults to the store's clock, COMMITMENTS_NOW
            // when set; with the real clock every recorded event is known.
            known_at: g.known_at.or(now),
            lock_timeout: g.lock_timeout,
            horizon_days: g.horizon_days,
            actor,
            width,
            stderr_tty: io::stderr().is_terminal(),
            small_cache: false,
            out: io::BufWriter::with_capacity(64 * 1024, io::stdout()),
        })
    }

    /// The read axes.
    pub fn read_at(&self) -> ReadAt {
        ReadAt {
            as_of: self.as_of,
            known_at: self.known_at,
            horizon_days: self.horizon_days,
        }
    }

    fn options(&self, create: bool) -> TrackerOptions {
        let clock: commitments_store::Clock = match self.now {
            Some(t) => Box::new(move || t),
            None => Box::new(Utc::now),
        };
        let defaults = TrackerOptions::default();
        TrackerOptions {
            clock,
            actor: self.actor.clone(),
            create,
            cache_capacity: match self.small_cache {
                true => SMALL_CACHE,
                false => defaults.cache_capacity,
            },
            ..defaults
        }
    }

    /// Opens an existing store for a command that folds the whole log into memory (`rebuild`,
    /// `verify`), set up to keep that memory small: a 16 MiB sled cache (the pass reads each
    /// page once), and, for a store of [`SMALL_PAGES_FROM`] or more, no transparent huge pages
    /// (see [`small_pages`]; ~30 MiB of a 1M-event rebuild's peak).
    pub fn open_whole_log(&mut self) -> CliResult<Tracker> {
        self.small_cache = true;
        if Store::bytes_on_disk_at(&self.store) >= SMALL_PAGES_FROM {
            small_pages();
        }
        self.open(false)
    }

    /// Opens the store (creating it if missing) for a bulk write (`import`), with the 16 MiB
    /// sled cache of [`Ctx::open_whole_log`]: an import fills each leaf once and goes on to
    /// the next, so sled may page out the ones it has finished with. 100k imports after the
    /// page cache was dropped: paired ratios 0.970 and 0.972 (8 and 10 alternating runs; peak
    /// RSS the same); 1M: 7.07 → 7.03 s, peak RSS 1,391 → 1,363 MiB (`docs/performance.md`).
    pub fn open_bulk(&mut self) -> CliResult<Tracker> {
        self.small_cache = true;
        self.open(true)
    }

    /// Opens the store for reading, runs `query` at the read axes, and closes the store before
    /// anything is printed, so other processes wait as briefly as possible.
    pub fn read<T>(
        &self,
        query: impl FnOnce(&Tracker, &ReadAt) -> Result<T, ProjectionError>,
    ) -> CliResult<T> {
        let tracker = self.open(false)?;
        let out = query(&tracker, &self.read_at());
        drop(tracker);
        Ok(out?)
    }

    /// Opens the store, waiting up to `--lock-timeout` while another process holds it.
    /// `create`: make the store if missing (writers); readers refuse a missing store.
    pub fn open(&self, create: bool) -> CliResult<Tracker> {
        let start = Instant::now();
        let mut said = false;
        loop {
            match self.try_open(create) {
                Ok(Some(t)) => return Ok(t),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
            let waited = start.elapsed().as_secs_f64();
            if waited >= self.lock_timeout {
                return Err(CliError::Busy {
                    path: self.store.clone(),
                    waited: self.lock_timeout,
                });
            }
            if !said && !self.quiet {
                eprintln!(
                    "waiting for the store at {}, held by another process",
                    self.store.display()
                );
                said = true;
            }
            let left = self.lock_timeout - waited;
            std::thread::sleep(Duration::from_secs_f64(left.clamp(0.0, 0.1)));
        }
    }

    /// One attempt: `Ok(None)` when the store is locked.
    pub fn try_open(&self, create: bool) -> CliResult<Option<Tracker>> {
        match Tracker::open(&self.store, self.options(create)) {
            Ok((t, report)) => {
                if !self.quiet {
                    for (_, why) in &report.rebuilt {
                        eprintln!("{why}");
                    }
                }
                if let Some(ms) = env_nonempty(HOLD_ENV).and_then(|v| v.parse::<u64>().ok()) {
                    eprintln!("test hook: holding the store for {ms} ms");
                    std::thread::sleep(Duration::from_millis(ms));
                }
                if env_nonempty(PANIC_ENV).is_some() {
                    panic!("test hook: {PANIC_ENV} is set");
                }
                Ok(Some(t))
            }
            Err(ProjectionError::Store(StoreError::Locked { .. })) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stdout (buffered; flushed by [`Ctx::flush`]).
    pub fn out(&mut self) -> &mut dyn Write {
        &mut self.out
    }

    /// Flushes stdout.
    pub fn flush(&mut self) -> CliResult {
        self.out.flush()?;
        Ok(())
    }

    /// Writes a table at the terminal's width and colour setting, then flushes stdout.
    pub fn write_table(&mut self, t: &Table) -> CliResult {
        t.write(&mut self.out, self.width, self.color)?;
        self.flush()
    }

    /// Prints a value as pretty JSON plus a newline.
    pub fn print_json<T: Serialize + ?Sized>(&mut self, v: &T) -> CliResult {
        serde_json::to_writer_pretty(&mut self.out, v).map_err(json_error)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Prints one compact JSON line.
    pub fn print_json_line<T: Serialize + ?Sized>(&mut self, v: &T) -> CliResult {
        serde_json::to_writer(&mut self.out, v).map_err(json_error)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// A note on stderr (suppressed by `-q`).
    pub fn note(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    /// A warning on stderr (always).
    pub fn warn(&self, msg: &str) {
        eprintln!("warning: {msg}");
    }

    /// A progress bar on stderr that appears only when the work takes more than a moment,
    /// and never with `--json`, `-q` or when stderr is not a terminal.
    pub fn progress(&self, total: Option<u64>, what: &str) -> Progress {
        let enabled = self.stderr_tty && !self.json && !self.quiet;
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::hidden()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
        };
        let style = if total.is_some() {
            ProgressStyle::with_template(
                "{msg:>10} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta})",
            )
        } else {
            ProgressStyle::with_template("{msg:>10} {spinner} {human_pos} ({per_sec})")
        };
        if let Ok(s) = style {
            bar.set_style(s.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        Progress {
            bar,
            enabled,
            shown: Cell::new(false),
            start: Instant::now(),
        }
    }

    /// Store path for messages.
    pub fn store_path(&self) -> &Path {
        &self.store
    }
}

/// A progress bar that shows itself after a short delay.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    enabled: bool,
    shown: Cell<bool>,
    start: Instant,
}

impl Progress {
    /// Sets the position.
    pub fn set(&self, n: u64) {
        if !self.enabled {
            return;
        }
        if !self.shown.get() && self.start.elapsed() > Duration::from_millis(300) {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown.set(true);
        }
        self.bar.set_position(n);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// A JSON write that failed: an I/O error (a closed pipe, …) stays one; anything else is ours.
fn json_error(e: serde_json::Error) -> CliError {
    match e.io_error_kind() {
        Some(kind) => CliError::Io(io::Error::from(kind)),
        None => CliError::Internal(format!("cannot encode JSON: {e}")),
    }
}
