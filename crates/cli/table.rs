//! Aligned tables sized to the terminal, and colour.

use std::io::Write;

/// A colour (ANSI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// Overdue, faults.
    Red,
    /// In window.
    Yellow,
    /// Fulfilled, ok.
    Green,
    /// Partially fulfilled.
    Cyan,
    /// Lapsed, stalled.
    Magenta,
    /// Finished without fulfilment, no deadline.
    Dim,
    /// Headers.
    Bold,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Red => "31",
            Color::Yellow => "33",
            Color::Green => "32",
            Color::Cyan => "36",
            Color::Magenta => "35",
            Color::Dim => "2",
            Color::Bold => "1",
        }
    }
}

/// Wraps `s` in the colour when `on`.
pub fn paint(s: &str, c: Option<Color>, on: bool) -> String {
    match c {
        Some(c) if on && !s.is_empty() => format!("\x1b[{}m{s}\x1b[0m", c.code()),
        _ => s.to_owned(),
    }
}

/// The colour of a commitment status.
pub fn status_color(status: &str) -> Option<Color> {
    match status {
        "fulfilled" => Some(Color::Green),
        "partially_fulfilled" => Some(Color::Cyan),
        "lapsed" => Some(Color::Magenta),
        "cancelled" | "declined" | "retracted" => Some(Color::Dim),
        _ => None,
    }
}

/// The colour of a window state.
pub fn window_color(window: &str) -> Option<Color> {
    match window {
        "overdue" => Some(Color::Red),
        "in_window" => Some(Color::Yellow),
        "no_deadline" => Some(Color::Dim),
        _ => None,
    }
}

/// One cell.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    text: String,
    color: Option<Color>,
}

impl Cell {
    /// A coloured cell.
    pub fn colored(text: impl Into<String>, color: Option<Color>) -> Cell {
        Cell {
            text: text.into(),
            color,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, color: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell {
            text: text.to_owned(),
            color: None,
        }
    }
}

/// A table: a header and rows. Columns marked shrinkable are truncated (with `…`) to fit the
/// width, widest first.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    shrink: Vec<bool>,
    keep: Vec<bool>,
    right: Vec<bool>,
    rows: Vec<Vec<Cell>>,
}

const GAP: usize = 2;
const MIN_SHRUNK: usize = 8;
/// What the last (free-text) column keeps before other columns are truncated.
const LAST_MIN: usize = 24;

fn width_of(s: &str) -> usize {
    s.chars().count()
}

fn truncate(s: &str, w: usize) -> String {
    if width_of(s) <= w {
        return s.to_owned();
    }
    if w == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(w - 1).collect();
    out.push('…');
    out
}

impl Table {
    /// Columns: `(header, shrinkable)`; a header starting with `>` is right-aligned.
    pub fn new(cols: &[(&'static str, bool)]) -> Table {
        Table {
            headers: cols.iter().map(|c| c.0.trim_start_matches('>')).collect(),
            shrink: cols.iter().map(|c| c.1).collect(),
            keep: vec![false; cols.len()],
            right: cols.iter().map(|c| c.0.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Marks a shrinkable column (an id) to be truncated only when no other column can give
    /// way any more.
    pub fn keep(mut self, col: usize) -> Table {
        if let Some(k) = self.keep.get_mut(col) {
            *k = true;
        }
        self
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// Writes the table; `width` None = no limit.
    pub fn write(
        &self,
        out: &mut dyn Write,
        width: Option<usize>,
        color: bool,
    ) -> std::io::Result<()> {
        let n = self.headers.len();
        let mut w: Vec<usize> = self.headers.iter().map(|h| width_of(h)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(width_of(&c.text));
            }
        }
        if let Some(limit) = width {
            let total = |w: &[usize]| w.iter().sum::<usize>() + GAP * n.saturating_sub(1);
            // The last shrinkable column (free text: description, topics, title) gives way
            // first, down to a readable minimum; then the widest shrinkable one, a step at a time.
            let floor = |i: usize| MIN_SHRUNK.max(width_of(self.headers[i]));
            if let Some(last) = (0..n).rev().find(|&i| self.shrink[i] && !self.keep[i]) {
                let keep = LAST_MIN.max(floor(last));
                while total(&w) > limit && w[last] > keep {
                    w[last] -= 1;
                }
            }
            for last_resort in [false, true] {
                while total(&w) > limit {
                    let cand = (0..n)
                        .filter(|&i| {
                            self.shrink[i] && self.keep[i] == last_resort && w[i] > floor(i)
                        })
                        .max_by_key(|&i| w[i]);
                    match cand {
                        Some(i) => w[i] -= 1,
                        None => break,
                    }
                }
            }
        }
        let line =
            |out: &mut dyn Write, cells: &[(String, Option<Color>)]| -> std::io::Result<()> {
                let mut s = String::new();
                for (i, (text, c)) in cells.iter().enumerate() {
                    let t = truncate(text, w[i]);
                    let pad = w[i] - width_of(&t);
                    let last = i + 1 == cells.len();
                    if self.right[i] {
                        s.push_str(&" ".repeat(pad));
                        s.push_str(&paint(&t, *c, color));
                    } else {
                        s.push_str(&paint(&t, *c, color));
                        if !last {
                            s.push_str(&" ".repeat(pad));
                        }
                    }
                    if !last {
                        s.push_str(&" ".repeat(GAP));
                    }
                }
                writeln!(out, "{}", s.trim_end())
            };
        let head: Vec<(String, Option<Color>)> = self
            .headers
            .iter()
            .map(|h| (h.to_string(), Some(Color::Bold)))
            .collect();
        line(out, &head)?;
        for r in &self.rows {
            let cells: Vec<(String, Option<Color>)> = (0..n)
                .map(|i| {
                    r.get(i)
                        .map(|c| (c.text.clone(), c.color))
                        .unwrap_or_default()
                })
                .collect();
            line(out, &cells)?;
        }
        Ok(())
    }
}

/// Key/value lines (`show`, `status`), keys aligned.
pub fn write_pairs(
    out: &mut dyn Write,
    pairs: &[(&str, String)],
    width: Option<usize>,
) -> std::io::Result<()> {
    let kw = pairs.iter().map(|p| width_of(p.0)).max().unwrap_or(0);
    for (k, v) in pairs {
        let mut v = v.clone();
        if let Some(limit) = width {
            v = truncate(&v, limit.saturating_sub(kw + 2).max(20));
        }
        writeln!(out, "{:<kw$}  {}", format!("{k}:"), v, kw = kw + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_widest_shrinkable_column() {
        let mut t = Table::new(&[("ID", false), ("DESCRIPTION", true)]);
        t.row(vec!["abc".into(), "a very long description indeed".into()]);
        let mut out = Vec::new();
        t.write(&mut out, Some(20), false).expect("write");
        let s = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[1], "abc  a very long de…");
        assert!(lines.iter().all(|l| l.chars().count() <= 20));
    }

    #[test]
    fn no_limit_keeps_everything() {
        let mut t = Table::new(&[("A", true), (">N", false)]);
        t.row(vec!["x".repeat(300).into(), "7".into()]);
        let mut out = Vec::new();
        t.write(&mut out, None, false).expect("write");
        let s = String::from_utf8(out).expect("utf8");
        assert!(s.contains(&"x".repeat(300)));
    }
}
