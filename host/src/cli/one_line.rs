//! Text that plugins and senders control, made safe for a log or a
//! terminal: one record stays one line, and nothing it carries is taken for
//! a terminal's control sequence.
//!
//! A plugin's log message, a sender's event id or an error quoting either
//! could otherwise hold a newline followed by a line that looks like the
//! host's own (a forged "plugin loaded", a forged admin action), a carriage
//! return that hides what came before it on a terminal, or an escape
//! sequence that restyles or clears the operator's screen. Every control
//! character but tab is written as an escape instead (`\n`, `\r`,
//! `\u{1b}`); JSON logs need nothing of this, JSON escapes them itself.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};

/// Whether `c` is written as an escape.
fn escaped(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// Write `c`'s escape: Rust's own spelling (`\n`, `\r`, `\u{1b}`).
fn write_escape(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    write!(out, "{}", c.escape_default())
}

/// `s` with its control characters (but tab) escaped; borrowed when it has
/// none, which is nearly always.
pub fn one_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(escaped) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    // Writing to a String cannot fail.
    let _ = OneLine(&mut out).write_str(s);
    Cow::Owned(out)
}

/// A writer that escapes control characters on their way to `W`.
pub struct OneLine<W>(pub W);

impl<W: fmt::Write> fmt::Write for OneLine<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(escaped) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write_escape(&mut self.0, c)?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// tracing's default fields (`message key=value …`) with every control
/// character escaped, for the human log format. The fields are rendered
/// without terminal styling (the level keeps its colour): styling is made of
/// the very escape sequences this removes.
#[derive(Debug, Default)]
pub struct OneLineFields;

impl<'writer> FormatFields<'writer> for OneLineFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut escaping = OneLine(&mut writer);
        DefaultFields::new().format_fields(Writer::new(&mut escaping), fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_but_tab_are_escaped() {
        assert_eq!(one_line("plain\ttext é ✓"), "plain\ttext é ✓");
        assert!(matches!(one_line("plain"), Cow::Borrowed(_)));
        assert_eq!(
            one_line("ok\n2026-12-01T00:00:00Z  INFO gridlet: forged\rX\u{1b}[2J\u{7f}\u{85}"),
            "ok\\n2026-12-01T00:00:00Z  INFO gridlet: forged\\rX\\u{1b}[2J\\u{7f}\\u{85}"
        );
        assert_eq!(one_line("\n"), "\\n");
    }

    #[test]
    fn the_writer_escapes_across_pieces() {
        let mut out = String::new();
        let mut w = OneLine(&mut out);
        // Piece by piece, as `write!` hands text over: a control character
        // at either end of a piece is escaped too.
        for piece in ["a\n", "\r", "b", "\u{0}"] {
            w.write_str(piece).expect("write");
        }
        assert_eq!(out, "a\\n\\rb\\u{0}");
    }
}
