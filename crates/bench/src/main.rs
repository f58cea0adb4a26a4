//! `commitments-bench`: the benchmark suite of issue 6, as one binary so every figure comes
//! with its baselines measured in the same process and run.
//!
//! ```text
//! cargo build --release
//! target/release/commitments-bench --n 10000,100000,1000000 --runs 3 --bin target/release/commitments
//! ```
//!
//! Per N and run: the workload (the shared benchmark's shape, `commitments-workload`),
//! then, each on a fresh directory:
//! - plain file: append + fdatasync per 1,000 and per event; read back + parse + fold;
//! - raw sled 0.34.7: one key per event plus a stream index entry, one transaction and flush
//!   per 1,000 (durable phase: per event, flush + fsync); scan + parse + fold;
//! - the store: append batched (1,000 events per durable commit), durable single appends
//!   (p50/p99), 8 concurrent writers (group commit), read back + parse + fold, bytes on disk,
//!   and the open (in this process, and in 5 new processes of this binary);
//! - end to end (with `--bin`): `commitments import`, `rebuild` (peak RSS), `show`,
//!   `history`, `list --overdue`, `status` (open) as separate processes, and the store size.
//!
//! `--phases store,e2e` runs only those phases (`file`, `sled`, `store`, `e2e`), e.g. to
//! rerun one figure; ratios to a phase left out are then missing.
//!
//! Prints Markdown tables of medians and ratios. No assertions: figures are reported as
//! measured.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions as FsOpen};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use commitments_domain::event::Event;
use commitments_store::{NewEvent, OpenOptions, Store};
use serde::Deserialize;
use sled::Transactional;

#[derive(Debug)]
struct Args {
    ns: Vec<usize>,
    runs: usize,
    bin: Option<PathBuf>,
    work: PathBuf,
    durable: usize,
    writers: usize,
    /// Which phases run (0 file, 1 raw sled, 2 store, 3 end to end); all by default.
    phases: Vec<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        ns: vec![10_000],
        runs: 3,
        bin: None,
        work: PathBuf::from("target/bench-work"),
        durable: 2_000,
        writers: 8,
        phases: vec![0, 1, 2, 3],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--n" => {
                a.ns = val()?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .replace('_', "")
                            .parse::<usize>()
                            .map_err(|e| format!("--n: {e}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--runs" => a.runs = val()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--bin" => a.bin = Some(PathBuf::from(val()?)),
            "--work" => a.work = PathBuf::from(val()?),
            "--durable" => a.durable = val()?.parse().map_err(|e| format!("--durable: {e}"))?,
            "--writers" => a.writers = val()?.parse().map_err(|e| format!("--writers: {e}"))?,
            "--phases" => {
                a.phases = val()?
                    .split(',')
                    .map(|s| match s.trim() {
                        "file" => Ok(0),
                        "sled" => Ok(1),
                        "store" => Ok(2),
                        "e2e" => Ok(3),
                        other => Err(format!("--phases: unknown phase {other}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "-h" | "--help" => {
                println!("usage: commitments-bench [--n 10000,100000] [--runs 3] [--bin target/release/commitments] [--work DIR] [--durable 2000] [--writers 8] [--phases file,sled,store,e2e]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// The flat event every baseline replay parses into (as the shared peers do): owned fields,
/// no validation.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Flat {
    #[serde(rename = "type")]
    event_type: String,
    event_id: Option<String>,
    occurred: Option<String>,
    recorded_by: Option<String>,
    #[serde(default)]
    evidence: Vec<serde_json::Value>,
    commitment_id: Option<String>,
    call_id: Option<String>,
    document_id: Option<String>,
    source_id: Option<String>,
    mode: Option<String>,
    participants: Option<Vec<serde_json::Value>>,
    topics: Option<Vec<String>>,
    kind: Option<String>,
    parties: Option<Vec<String>>,
    strength: Option<String>,
    description: Option<String>,
    due: Option<serde_json::Value>,
    origin: Option<String>,
    scheduled_for: Option<serde_json::Value>,
    new_due: Option<serde_json::Value>,
    reason: Option<String>,
    extent: Option<String>,
    summary: Option<String>,
    as_of: Option<String>,
    rating: Option<String>,
    rationale: Option<String>,
    url: Option<String>,
    title: Option<String>,
    language: Option<String>,
}

/// The fold every replay computes: per stream, events by type and the last type.
#[derive(Default)]
struct Fold {
    events: u64,
    streams: HashMap<String, (u32, String)>,
}

impl Fold {
    fn add(&mut self, bytes: &[u8]) {
        let Ok(f) = serde_json::from_slice::<Flat>(bytes) else {
            return;
        };
        let stream = f
            .commitment_id
            .or(f.call_id)
            .or(f.document_id)
            .or(f.source_id)
            .unwrap_or_default();
        let e = self.streams.entry(stream).or_default();
        e.0 += 1;
        e.1 = f.event_type;
        self.events += 1;
    }
}

/// Bytes on disk under `path` per byte of the workload as JSON Lines.
fn per_jsonl_byte(path: &Path, evs: &[Prepared]) -> f64 {
    dir_size(path) as f64 / evs.iter().map(|e| e.line.len() + 1).sum::<usize>() as f64
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => n += dir_size(&e.path()),
                Ok(_) => n += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    } else if let Ok(m) = fs::metadata(p) {
        n = m.len();
    }
    n
}

/// Removes what a previous phase left at `p`, then waits until the kernel has written back
/// every dirty page (`sync`): otherwise one phase's writeback (e.g. 100 MB of a batched store)
/// lands in the next phase's fsyncs, which measured 10x slower behind it.
fn fresh(p: &Path) -> PathBuf {
    let _ = fs::remove_dir_all(p);
    let _ = fs::remove_file(p);
    settle();
    p.to_path_buf()
}

/// Waits until the kernel has written back every dirty page (`sync`).
fn settle() {
    let _ = Command::new("sync").status();
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

struct Prepared {
    line: Vec<u8>,
    stream: String,
    new: NewEvent,
}

fn prepare(lines: &[String]) -> Vec<Prepared> {
    lines
        .iter()
        .map(|l| {
            let e = Event::from_json(l.as_bytes()).expect("workload lines are valid");
            let stream = e.subject().map(|s| s.to_string()).unwrap_or_default();
            Prepared {
                line: l.as_bytes().to_vec(),
                stream: stream.clone(),
                new: NewEvent {
                    event_id: e.event_id().map(|i| i.0).unwrap_or_default(),
                    stream,
                    event_type: e.type_name().to_owned(),
                    schema_version: 1,
                    body: e.to_json().expect("encodes"),
                },
            }
        })
        .collect()
}

/// One run's figures, by name.
type Figures = HashMap<&'static str, f64>;

fn file_floor(
    work: &Path,
    evs: &[Prepared],
    durable: usize,
    f: &mut Figures,
) -> std::io::Result<()> {
    let path = fresh(&work.join("file-floor.jsonl"));
    let mut file = FsOpen::new().create(true).append(true).open(&path)?;
    let t = Instant::now();
    for chunk in evs.chunks(1_000) {
        let mut buf = Vec::with_capacity(chunk.len() * 500);
        for e in chunk {
            buf.extend_from_slice(&e.line);
            buf.push(b'\n');
        }
        file.write_all(&buf)?;
        file.sync_data()?;
    }
    f.insert(
        "file_batched_eps",
        evs.len() as f64 / t.elapsed().as_secs_f64(),
    );
    drop(file);
    let t = Instant::now();
    let mut fold = Fold::default();
    for line in BufReader::new(File::open(&path)?).split(b'\n') {
        fold.add(&line?);
    }
    f.insert(
        "file_replay_eps",
        fold.events as f64 / t.elapsed().as_secs_f64(),
    );
    let path = fresh(&work.join("file-durable.jsonl"));
    let mut file = FsOpen::new().create(true).append(true).open(&path)?;
    let n = durable.min(evs.len());
    let t = Instant::now();
    for e in &evs[..n] {
        let mut buf = e.line.clone();
        buf.push(b'\n');
        file.write_all(&buf)?;
        file.sync_data()?;
    }
    f.insert("file_durable_eps", n as f64 / t.elapsed().as_secs_f64());
    Ok(())
}

fn sled_raw(
    work: &Path,
    evs: &[Prepared],
    durable: usize,
    f: &mut Figures,
) -> Result<(), Box<dyn std::error::Error>> {
    let path = fresh(&work.join("sled-raw"));
    {
        let db = sled::open(&path)?;
        let events = db.open_tree("events")?;
        let index = db.open_tree("stream_index")?;
        let mut versions: HashMap<&str, u64> = HashMap::new();
        let t = Instant::now();
        let mut seq = 0u64;
        for chunk in evs.chunks(1_000) {
            let rows: Vec<(u64, Vec<u8>, &[u8])> = chunk
                .iter()
                .map(|e| {
                    seq += 1;
                    let v = versions.entry(e.stream.as_str()).or_insert(0);
                    *v += 1;
                    let mut k = e.stream.as_bytes().to_vec();
                    k.push(0);
                    k.extend_from_slice(&v.to_be_bytes());
                    (seq, k, e.line.as_slice())
                })
                .collect();
            (&events, &index)
                .transaction(|(ev, ix)| {
                    for (s, k, line) in &rows {
                        ev.insert(&s.to_be_bytes(), *line)?;
                        ix.insert(k.as_slice(), &s.to_be_bytes())?;
                    }
                    Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
                })
                .map_err(|e| format!("{e:?}"))?;
            db.flush()?;
        }
        f.insert(
            "sled_batched_eps",
            evs.len() as f64 / t.elapsed().as_secs_f64(),
        );
        f.insert("sled_bytes_per_jsonl", per_jsonl_byte(&path, evs));
    }
    {
        let t = Instant::now();
        let db = reopen_raw_sled(&path)?;
        let events = db.open_tree("events")?;
        let mut fold = Fold::default();
        for kv in events.iter() {
            let (_, v) = kv?;
            fold.add(&v);
        }
        f.insert(
            "sled_replay_eps",
            fold.events as f64 / t.elapsed().as_secs_f64(),
        );
    }
    let path = fresh(&work.join("sled-durable"));
    let db = sled::open(&path)?;
    let events = db.open_tree("events")?;
    let data = File::open(path.join("db"))?;
    let n = durable.min(evs.len());
    let t = Instant::now();
    for (i, e) in evs[..n].iter().enumerate() {
        events.insert((i as u64 + 1).to_be_bytes(), e.line.as_slice())?;
        db.flush()?;
        data.sync_all()?;
    }
    f.insert("sled_durable_eps", n as f64 / t.elapsed().as_secs_f64());
    Ok(())
}

/// Runs `open` until it succeeds, fails otherwise than `locked` says, or 2 s have passed:
/// after a process (this one or the suite's parent) drops a sled database, sled's background
/// threads can hold its file lock a moment longer ("could not acquire lock", seen in a CI
/// run; the store retries the same way, sled#1234).
fn retry_while_locked<T, E>(
    mut open: impl FnMut() -> Result<T, E>,
    locked: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let started = Instant::now();
    loop {
        match open() {
            Err(e) if locked(&e) && started.elapsed() < Duration::from_secs(2) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Opens the raw sled database at `path` that this process has just dropped.
fn reopen_raw_sled(path: &Path) -> Result<sled::Db, sled::Error> {
    retry_while_locked(
        || sled::open(path),
        |e| matches!(e, sled::Error::Io(e) if e.to_string().contains("could not acquire lock")),
    )
}

/// The hidden first argument that makes the bench a probe timing one store open.
const OPEN_PROBE: &str = "--open-probe";

/// The median of 5 opens of the store at `path`, each in a new process of this binary.
///
/// The in-process open above runs in a process that has just allocated and freed the whole
/// workload: glibc's malloc then settles its bins of millions of small freed chunks at the
/// next large allocation, which is sled's first at open (190-320 ms measured at 1M, against
/// 20-30 ms for the same open in a new process). A new process measures the store's open.
fn open_fresh_ms(path: &Path) -> Result<f64, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let out = Command::new(&exe).arg(OPEN_PROBE).arg(path).output()?;
        if !out.status.success() {
            return Err(format!(
                "open probe failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        times.push(String::from_utf8_lossy(&out.stdout).trim().parse::<f64>()?);
    }
    Ok(median(&mut times))
}

fn store_phase(
    work: &Path,
    evs: &[Prepared],
    durable: usize,
    writers: usize,
    f: &mut Figures,
) -> Result<(), Box<dyn std::error::Error>> {
    let path = fresh(&work.join("store-batched"));
    {
        let store = Store::open(&path, OpenOptions::default())?;
        let news: Vec<Vec<NewEvent>> = evs
            .chunks(1_000)
            .map(|c| c.iter().map(|e| e.new.clone()).collect())
            .collect();
        let t = Instant::now();
        for batch in &news {
            store.append(batch, &[])?;
        }
        f.insert(
            "store_batched_eps",
            evs.len() as f64 / t.elapsed().as_secs_f64(),
        );
        // As the CLI does after an import: sled's snapshot is written here, not by the open.
        let t = Instant::now();
        store.close();
        f.insert("store_close_ms", t.elapsed().as_secs_f64() * 1e3);
    }
    f.insert("store_bytes_per_jsonl", per_jsonl_byte(&path, evs));
    {
        let t = Instant::now();
        let store = Store::open(&path, OpenOptions::default())?;
        f.insert("store_open_ms", t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let mut fold = Fold::default();
        for se in store.read_log(1, None) {
            fold.add(&se?.body_json());
        }
        f.insert(
            "store_replay_eps",
            fold.events as f64 / t.elapsed().as_secs_f64(),
        );
        let t = Instant::now();
        let mut n = 0u64;
        for se in store.read_log(1, None) {
            let se = se?;
            Event::from_stored(
                &se.body_json(),
                se.schema_version,
                &commitments_domain::Upcasters::standard(),
            )?;
            n += 1;
        }
        f.insert("store_decode_eps", n as f64 / t.elapsed().as_secs_f64());
    }
    f.insert("store_open_fresh_ms", open_fresh_ms(&path)?);
    let path = fresh(&work.join("store-durable"));
    {
        let store = Store::open(&path, OpenOptions::default())?;
        let n = durable.min(evs.len());
        let mut lat = Vec::with_capacity(n);
        let t = Instant::now();
        for e in &evs[..n] {
            let t1 = Instant::now();
            store.append(std::slice::from_ref(&e.new), &[])?;
            lat.push(t1.elapsed());
        }
        f.insert("store_durable_eps", n as f64 / t.elapsed().as_secs_f64());
        f.insert(
            "store_durable_p50_us",
            percentile(&mut lat, 0.5).as_secs_f64() * 1e6,
        );
        f.insert(
            "store_durable_p99_us",
            percentile(&mut lat, 0.99).as_secs_f64() * 1e6,
        );
    }
    let path = fresh(&work.join("store-concurrent"));
    {
        let store = Arc::new(Store::open(&path, OpenOptions::default())?);
        let n = durable.min(evs.len());
        let per = n / writers.max(1);
        let t = Instant::now();
        std::thread::scope(|s| {
            for w in 0..writers {
                let store = store.clone();
                let slice = &evs[w * per..(w + 1) * per];
                s.spawn(move || {
                    for e in slice {
                        let _ = store.append(std::slice::from_ref(&e.new), &[]);
                    }
                });
            }
        });
        f.insert(
            "store_concurrent_eps",
            (per * writers) as f64 / t.elapsed().as_secs_f64(),
        );
    }
    Ok(())
}

/// Runs a command, returning wall time, the child's peak RSS (KiB, `VmHWM` sampled from
/// `/proc/PID/status` every 2 ms while it runs) and its output.
fn timed(
    cmd: &mut Command,
) -> Result<(f64, u64, std::process::Output), Box<dyn std::error::Error>> {
    let t = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = stdout_pipe.as_mut() {
            let _ = std::io::Read::read_to_end(o, &mut v);
        }
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = stderr_pipe.as_mut() {
            let _ = std::io::Read::read_to_end(e, &mut v);
        }
        v
    });
    let mut peak = 0u64;
    let status = loop {
        if let Ok(s) = fs::read_to_string(&status_path) {
            if let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let secs = t.elapsed().as_secs_f64();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "{cmd:?} failed ({status}): {}",
            String::from_utf8_lossy(&stderr)
        )
        .into());
    }
    Ok((
        secs,
        peak,
        std::process::Output {
            status,
            stdout,
            stderr,
        },
    ))
}

fn e2e(
    bin: &Path,
    work: &Path,
    file: &Path,
    n: usize,
    f: &mut Figures,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = fresh(&work.join("e2e.db"));
    let cmd = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.arg("--store")
            .arg(&store)
            .arg("-q")
            .args(args)
            .env("COMMITMENTS_NOW", "2025-06-01T00:00:00Z");
        c
    };
    let (secs, rss, _) = timed(cmd(&["import", &file.display().to_string()]).arg("--quiet"))?;
    f.insert("import_eps", n as f64 / secs);
    f.insert("import_rss_mib", rss as f64 / 1024.0);
    f.insert(
        "e2e_bytes_per_jsonl",
        dir_size(&store) as f64 / fs::metadata(file)?.len() as f64,
    );
    // Each command after the import starts once the previous one's writes are on disk (the
    // import's 46 MB at 100k, the rebuild's view rows), as the phases do: the 10k rebuild
    // measured behind the import's writeback took ~2.5x its settled time.
    settle();
    let (secs, rss, _) = timed(&mut cmd(&["rebuild"]))?;
    f.insert("rebuild_eps", n as f64 / secs);
    f.insert("rebuild_rss_mib", rss as f64 / 1024.0);
    settle();
    let (secs, _, _) = timed(&mut cmd(&["status"]))?;
    f.insert("status_ms", secs * 1e3);
    let id = format!("cmt-{:07}", n / 20);
    settle();
    let (secs, _, _) = timed(&mut cmd(&["show", &id]))?;
    f.insert("show_ms", secs * 1e3);
    settle();
    let (secs, _, _) = timed(&mut cmd(&["history", &id]))?;
    f.insert("history_ms", secs * 1e3);
    settle();
    let (secs, _, _) = timed(&mut cmd(&["list", "--overdue"]))?;
    f.insert("list_overdue_ms", secs * 1e3);
    Ok(())
}

/// A ratio to two decimals, or a dash when a side was not measured (`--phases`).
fn fmt_ratio(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{x:.2}")
    }
}

fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        return "–".into();
    }
    if x >= 100.0 {
        let s = format!("{:.0}", x);
        let bytes = s.as_bytes();
        let mut out = String::new();
        for (i, c) in bytes.iter().enumerate() {
            if i > 0 && (bytes.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(*c as char);
        }
        out
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn main() -> std::process::ExitCode {
    // The suite's own child: time one `Store::open` in a fresh process (see `open_fresh_ms`).
    let mut argv = std::env::args().skip(1);
    if argv.next().as_deref() == Some(OPEN_PROBE) {
        let path = PathBuf::from(argv.next().unwrap_or_default());
        // The parent has just dropped the store: only the open that gets the lock is timed.
        let opened = retry_while_locked(
            || {
                let t = Instant::now();
                Store::open(&path, OpenOptions::default()).map(|s| (s, t.elapsed()))
            },
            |e| matches!(e, commitments_store::StoreError::Locked { .. }),
        );
        return match opened {
            Ok((store, took)) => {
                println!("{}", took.as_secs_f64() * 1e3);
                drop(store);
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("commitments-bench: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("commitments-bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("commitments-bench: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    fs::create_dir_all(&args.work)?;
    println!("# commitments-bench\n");
    println!(
        "runs: {}, durable events: {}, concurrent writers: {}, machine: {} cores",
        args.runs,
        args.durable,
        args.writers,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    for &n in &args.ns {
        let lines = commitments_workload::generate(n, 42, 0, true);
        let file = args.work.join(format!("events-{n}.jsonl"));
        {
            let mut w = std::io::BufWriter::new(File::create(&file)?);
            for l in &lines {
                w.write_all(l.as_bytes())?;
                w.write_all(b"\n")?;
            }
        }
        let bytes = fs::metadata(&file)?.len();
        let evs = prepare(&lines);
        drop(lines);
        let mut runs: Vec<Figures> = Vec::new();
        for r in 0..args.runs {
            eprintln!("N={n} run {}/{}", r + 1, args.runs);
            let mut f = Figures::new();
            // Rotate the order so no phase always runs on a cold or a warm machine.
            let order = [0, 1, 2, 3];
            for k in 0..4 {
                let phase = order[(k + r) % 4];
                if !args.phases.contains(&phase) {
                    continue;
                }
                match phase {
                    0 => file_floor(&args.work, &evs, args.durable, &mut f)?,
                    1 => sled_raw(&args.work, &evs, args.durable, &mut f)?,
                    2 => store_phase(&args.work, &evs, args.durable, args.writers, &mut f)?,
                    _ => {
                        if let Some(bin) = &args.bin {
                            e2e(bin, &args.work, &file, evs.len(), &mut f)?;
                        }
                    }
                }
            }
            runs.push(f);
        }
        report(n, evs.len(), bytes, &runs);
    }
    Ok(())
}

fn med(runs: &[Figures], key: &str) -> f64 {
    let mut v: Vec<f64> = runs.iter().filter_map(|f| f.get(key).copied()).collect();
    median(&mut v)
}

/// Median over runs of the per-run ratio a/b (the fair comparison on a noisy machine).
fn ratio(runs: &[Figures], a: &str, b: &str) -> f64 {
    let mut v: Vec<f64> = runs
        .iter()
        .filter_map(|f| Some(f.get(a)? / f.get(b)?))
        .collect();
    median(&mut v)
}

fn report(n: usize, events: usize, bytes: u64, runs: &[Figures]) {
    println!(
        "\n## N = {n} ({events} events, {:.1} MiB of JSON Lines), medians of {} runs\n",
        bytes as f64 / 1048576.0,
        runs.len()
    );
    println!("| figure | commitments | raw sled 0.34.7 | plain file | × sled | × file |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, ours: &str, sled: &str, file: &str| {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            fmt_num(med(runs, ours)),
            if sled.is_empty() {
                "–".into()
            } else {
                fmt_num(med(runs, sled))
            },
            if file.is_empty() {
                "–".into()
            } else {
                fmt_num(med(runs, file))
            },
            if sled.is_empty() {
                "–".into()
            } else {
                fmt_ratio(ratio(runs, ours, sled))
            },
            if file.is_empty() {
                "–".into()
            } else {
                fmt_ratio(ratio(runs, ours, file))
            },
        )
    };
    row(
        "store append, batched 1,000/commit (ev/s)",
        "store_batched_eps",
        "sled_batched_eps",
        "file_batched_eps",
    );
    row(
        "store append, durable single (ev/s)",
        "store_durable_eps",
        "sled_durable_eps",
        "file_durable_eps",
    );
    row(
        "store append, durable single p50 (µs)",
        "store_durable_p50_us",
        "",
        "",
    );
    row(
        "store append, durable single p99 (µs)",
        "store_durable_p99_us",
        "",
        "",
    );
    row(
        "store append, 8 writers, durable single (ev/s)",
        "store_concurrent_eps",
        "",
        "",
    );
    row(
        "store read + parse + fold (ev/s)",
        "store_replay_eps",
        "sled_replay_eps",
        "file_replay_eps",
    );
    row(
        "store read + full typed decode (ev/s)",
        "store_decode_eps",
        "sled_replay_eps",
        "file_replay_eps",
    );
    row(
        "store bytes on disk per JSONL byte",
        "store_bytes_per_jsonl",
        "sled_bytes_per_jsonl",
        "",
    );
    row(
        "store close after the batched session (ms)",
        "store_close_ms",
        "",
        "",
    );
    row(
        "store open, in the suite's process (ms)",
        "store_open_ms",
        "",
        "",
    );
    row(
        "store open, new process (ms, median of 5)",
        "store_open_fresh_ms",
        "",
        "",
    );
    if runs.iter().any(|f| f.contains_key("import_eps")) {
        row(
            "`commitments import` end to end (ev/s)",
            "import_eps",
            "sled_batched_eps",
            "file_batched_eps",
        );
        row(
            "`commitments import` peak RSS (MiB)",
            "import_rss_mib",
            "",
            "",
        );
        row(
            "`commitments rebuild` (ev/s)",
            "rebuild_eps",
            "sled_replay_eps",
            "file_replay_eps",
        );
        row(
            "`commitments rebuild` peak RSS (MiB)",
            "rebuild_rss_mib",
            "",
            "",
        );
        row("`commitments show ID` (ms)", "show_ms", "", "");
        row("`commitments history ID` (ms)", "history_ms", "", "");
        row(
            "`commitments list --overdue` (ms)",
            "list_overdue_ms",
            "",
            "",
        );
        row(
            "`commitments status` (open + answer, ms)",
            "status_ms",
            "",
            "",
        );
        row(
            "store after import, bytes per JSONL byte",
            "e2e_bytes_per_jsonl",
            "sled_bytes_per_jsonl",
            "",
        );
    }
    let ratio_conc = ratio(runs, "store_concurrent_eps", "store_durable_eps");
    println!("\n8 writers vs 1 writer (group commit): {ratio_conc:.2}×");
}
