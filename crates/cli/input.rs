//! Reading JSON Lines input ourselves: line numbers as an editor counts them, a UTF-8 BOM and
//! CRLF accepted, blank lines skipped (but counted), and lines over 1 MiB refused without
//! buffering them whole.

use std::io::{self, BufRead};

use commitments_domain::{DomainError, Encoded, Event};

/// The longest line accepted, in bytes (line end excluded).
pub const MAX_LINE: usize = 1_048_576;

/// Reads lines with a bounded buffer.
#[derive(Debug)]
pub struct LineReader<R> {
    r: R,
    line_no: u64,
    bytes: u64,
    done: bool,
    /// The current line's bytes, reused from line to line.
    buf: Vec<u8>,
}

/// One physical line, borrowed from the reader ([`LineReader::next_line_ref`]).
#[derive(Debug)]
pub enum LineRef<'a> {
    /// Only whitespace.
    Blank,
    /// The line's bytes (line end and BOM removed).
    Text(&'a [u8]),
    /// Longer than [`MAX_LINE`]; skipped. Holds its length as far as it was read.
    TooLong(u64),
}

impl<R: BufRead> LineReader<R> {
    /// Wraps a reader.
    pub fn new(r: R) -> Self {
        LineReader {
            r,
            line_no: 0,
            bytes: 0,
            done: false,
            buf: Vec::new(),
        }
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next line with its 1-based number, or `None` at the end. The line is borrowed from
    /// a buffer the reader reuses (a fresh vector per line was ~5 % of the reading thread in
    /// an import).
    pub fn next_line_ref(&mut self) -> io::Result<Option<(u64, LineRef<'_>)>> {
        if self.done {
            return Ok(None);
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut len: u64 = 0;
        let mut too_long = false;
        let mut saw_any = false;
        loop {
            let chunk = match self.r.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                self.done = true;
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let (take, end) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            len += take as u64;
            if !too_long {
                // One extra byte for a `\r` before the `\n`.
                if buf.len() + take > MAX_LINE + 1 {
                    too_long = true;
                    buf.clear();
                    buf.shrink_to(64 * 1024);
                } else {
                    buf.extend_from_slice(&chunk[..take]);
                }
            }
            let consumed = if end { take + 1 } else { take };
            self.r.consume(consumed);
            self.bytes += consumed as u64;
            if end {
                break;
            }
        }
        self.line_no += 1;
        if too_long {
            self.buf = buf;
            return Ok(Some((self.line_no, LineRef::TooLong(len))));
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        if self.line_no == 1 && buf.starts_with(b"\xEF\xBB\xBF") {
            buf.drain(..3);
        }
        self.buf = buf;
        let buf = &self.buf;
        if buf.len() > MAX_LINE {
            return Ok(Some((self.line_no, LineRef::TooLong(buf.len() as u64))));
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some((self.line_no, LineRef::Blank)));
        }
        Ok(Some((self.line_no, LineRef::Text(buf))))
    }
}

/// Messages for lines refused before decoding.
pub fn too_long_reason(len: u64) -> String {
    format!(
        "the line is longer than 1 MiB ({MAX_LINE} bytes; read {len} bytes before giving up); it was skipped unread"
    )
}

/// Decodes one line into an event, checking UTF-8 first.
pub fn decode_line(bytes: &[u8]) -> Result<Event, DomainError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Event::from_json_str(text),
        Err(e) => Err(DomainError::Malformed(format!(
            "the line is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))),
    }
}

/// The events of an input, lazily: `(line, decoded)` for each non-blank line. I/O errors
/// become a bad line (so the import is refused, never cut short).
pub struct Events<'a, R> {
    reader: LineReader<R>,
    on_bytes: &'a dyn Fn(u64),
    failed: bool,
}

impl<'a, R: BufRead> Events<'a, R> {
    /// Wraps a reader; `on_bytes` hears the bytes consumed so far.
    pub fn new(r: R, on_bytes: &'a dyn Fn(u64)) -> Self {
        Events {
            reader: LineReader::new(r),
            on_bytes,
            failed: false,
        }
    }
}

impl<R: BufRead> Iterator for Events<'_, R> {
    type Item = (u64, Result<Event, DomainError>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            (self.on_bytes)(self.reader.bytes_read());
            match self.reader.next_line_ref() {
                Ok(None) => return None,
                Ok(Some((_, LineRef::Blank))) => continue,
                Ok(Some((n, LineRef::TooLong(len)))) => {
                    return Some((n, Err(DomainError::Malformed(too_long_reason(len)))))
                }
                Ok(Some((n, LineRef::Text(b)))) => return Some((n, decode_line(b))),
                Err(e) => {
                    self.failed = true;
                    return Some((
                        self.reader.line_no + 1,
                        Err(DomainError::Malformed(format!(
                            "cannot read the input: {e}"
                        ))),
                    ));
                }
            }
        }
    }
}

/// [`Events`] on a background thread: reading and decoding lines (about a fifth of an
/// import), and encoding each event's canonical JSON ahead ([`Encoded`]), overlap with
/// validating and appending on the calling thread. Items arrive in order, in chunks, through
/// a bounded channel, so memory stays bounded.
///
/// The canonical JSON is encoded ahead only while the calling thread is behind (at least
/// [`AHEAD_BACKLOG`] chunks wait for it); otherwise the decoding thread leaves it to the
/// validator, which encodes what comes without a body. With both done here, the decoding
/// thread was the slower one and the validating thread waited for it for a quarter of the
/// validation; the backlog shifts the encoding to whichever thread has time.
pub struct ParallelEvents<'a> {
    rx: std::sync::mpsc::Receiver<Vec<(u64, Result<Encoded, DomainError>)>>,
    chunk: std::vec::IntoIter<(u64, Result<Encoded, DomainError>)>,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    backlog: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    on_bytes: &'a dyn Fn(u64),
    worker: Option<std::thread::JoinHandle<()>>,
}

/// Items per chunk sent from the decoding thread.
const CHUNK: usize = 512;
/// Chunks sent and not yet taken at or above which the decoding thread encodes ahead.
const AHEAD_BACKLOG: usize = 2;

impl<'a> ParallelEvents<'a> {
    /// Starts decoding `r` on a new thread; `on_bytes` hears the bytes consumed so far.
    pub fn spawn(r: Box<dyn BufRead + Send>, on_bytes: &'a dyn Fn(u64)) -> Self {
        Self::spawn_with(r, on_bytes, AHEAD_BACKLOG)
    }

    /// [`ParallelEvents::spawn`] encoding ahead while at least `ahead_backlog` chunks wait
    /// (0: always; `usize::MAX`: never).
    fn spawn_with(
        r: Box<dyn BufRead + Send>,
        on_bytes: &'a dyn Fn(u64),
        ahead_backlog: usize,
    ) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = bytes.clone();
        let backlog = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let waiting = backlog.clone();
        let worker = std::thread::spawn(move || {
            let store_bytes = |n: u64| counter.store(n, Relaxed);
            let mut events = Events::new(r, &store_bytes);
            loop {
                let ahead = waiting.load(Relaxed) >= ahead_backlog;
                let encode = |e: Event| {
                    if ahead {
                        Encoded::new(e)
                    } else {
                        Encoded::from(e)
                    }
                };
                // Sized once: an event is a few hundred bytes, and growing the vector by
                // doubling copied each chunk about twice.
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.extend(events.by_ref().take(CHUNK).map(|(n, r)| (n, r.map(encode))));
                let last = chunk.len() < CHUNK;
                if !chunk.is_empty() {
                    waiting.fetch_add(1, Relaxed);
                    if tx.send(chunk).is_err() {
                        return;
                    }
                }
                if last {
                    return;
                }
            }
        });
        ParallelEvents {
            rx,
            chunk: Vec::new().into_iter(),
            bytes,
            backlog,
            on_bytes,
            worker: Some(worker),
        }
    }
}

impl Iterator for ParallelEvents<'_> {
    type Item = (u64, Result<Encoded, DomainError>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.chunk.next() {
                return Some(item);
            }
            (self.on_bytes)(self.bytes.load(std::sync::atomic::Ordering::Relaxed));
            match self.rx.recv() {
                Ok(chunk) => {
                    self.backlog
                        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    self.chunk = chunk.into_iter();
                }
                Err(_) => {
                    if let Some(w) = self.worker.take() {
                        if w.join().is_err() {
                            return Some((
                                0,
                                Err(DomainError::Malformed("the input reader failed".into())),
                            ));
                        }
                    }
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(u64, String)> {
        let mut r = LineReader::new(io::BufReader::with_capacity(7, input));
        let mut out = Vec::new();
        while let Some((n, l)) = r.next_line_ref().expect("read") {
            out.push((
                n,
                match l {
                    LineRef::Blank => "<blank>".to_owned(),
                    LineRef::Text(b) => String::from_utf8_lossy(b).into_owned(),
                    LineRef::TooLong(len) => format!("<too long {len}>"),
                },
            ));
        }
        out
    }

    #[test]
    fn bom_crlf_blank_and_last_line() {
        let got = lines(b"\xEF\xBB\xBF{\"a\":1}\r\n\r\n  \n{\"b\":2}");
        assert_eq!(
            got,
            vec![
                (1, "{\"a\":1}".to_owned()),
                (2, "<blank>".to_owned()),
                (3, "<blank>".to_owned()),
                (4, "{\"b\":2}".to_owned()),
            ]
        );
    }

    #[test]
    fn long_line_is_skipped_not_buffered() {
        let mut input = b"{}\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend_from_slice(b"\n{}\n");
        let mut r = LineReader::new(io::BufReader::new(&input[..]));
        assert!(matches!(
            r.next_line_ref().expect("1"),
            Some((1, LineRef::Text(_)))
        ));
        assert!(matches!(
            r.next_line_ref().expect("2"),
            Some((2, LineRef::TooLong(n))) if n == (MAX_LINE + 10) as u64
        ));
        assert!(matches!(
            r.next_line_ref().expect("3"),
            Some((3, LineRef::Text(_)))
        ));
        assert!(r.next_line_ref().expect("end").is_none());
    }

    #[test]
    fn exactly_the_limit_with_crlf_is_accepted() {
        let mut input = vec![b' '; MAX_LINE - 2];
        input.insert(0, b'{');
        input.push(b'}');
        input.extend_from_slice(b"\r\n");
        let mut r = LineReader::new(io::BufReader::new(&input[..]));
        assert!(
            matches!(r.next_line_ref().expect("1"), Some((1, LineRef::Text(b))) if b.len() == MAX_LINE)
        );
    }

    #[test]
    fn the_parallel_reader_yields_the_same_items_in_order() {
        let mut input = Vec::new();
        for i in 0..2000 {
            if i % 7 == 0 {
                input.extend_from_slice(b"\n");
            }
            if i % 5 == 0 {
                // Valid, and complete (id and author) in every other case: encoded ahead.
                let by = if i % 10 == 0 {
                    r#","recorded_by":"analyst:t""#
                } else {
                    ""
                };
                input.extend_from_slice(
                    format!(
                        r#"{{"type":"SourceRegistered","source_id":"src-{i}","url":"https://example.org/{i}","title":"T","language":"en","event_id":"0190b7a2-0000-7000-8000-{i:012}"{by}}}"#
                    )
                    .as_bytes(),
                );
                input.push(b'\n');
            } else {
                input.extend_from_slice(format!("{{\"type\":\"Nope{i}\"}}\n").as_bytes());
            }
        }
        let seq: Vec<(u64, String)> = Events::new(io::BufReader::new(&input[..]), &|_| {})
            .map(|(n, r)| (n, format!("{r:?}")))
            .collect();
        assert_eq!(seq.len(), 2000);
        // Only the 200 complete events can be encoded ahead: all of them when the decoding
        // thread always encodes ahead, none when it never does; with the default backlog, as
        // many as the threads' timing gives (the items must be the same either way).
        for (backlog, want) in [(0, Some(200)), (usize::MAX, Some(0)), (AHEAD_BACKLOG, None)] {
            let mut ahead = 0;
            let par: Vec<(u64, String)> = ParallelEvents::spawn_with(
                Box::new(io::BufReader::new(io::Cursor::new(input.clone()))),
                &|_| {},
                backlog,
            )
            .map(|(n, r)| {
                let r = r.map(|enc| {
                    let (ev, body) = enc.into_parts();
                    if let Some(b) = body {
                        assert_eq!(Some(b), ev.to_json().ok(), "line {n}");
                        ahead += 1;
                    }
                    ev
                });
                (n, format!("{r:?}"))
            })
            .collect();
            assert_eq!(par, seq, "backlog {backlog}");
            if let Some(w) = want {
                assert_eq!(ahead, w, "backlog {backlog}");
            }
        }
    }

    #[test]
    fn invalid_utf8_is_named() {
        let e = decode_line(b"{\"type\":\"\xff\"}").expect_err("bad");
        assert!(e.to_string().contains("UTF-8"));
    }
}
