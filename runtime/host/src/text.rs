//! Text that comes from a manager (log messages, progress, error details,
//! names, paths) is made safe before it reaches the agent's log or Ironic:
//! control characters are escaped, so a message can never start a line of
//! its own that looks like the agent's, and its length is capped.

use std::borrow::Cow;

/// `text` with control characters escaped (`\n` → `\\n`, others as
/// `\u{…}`) and cut to at most `max` bytes (at a character boundary, with a
/// note of how much was cut).
///
/// Only the kept prefix is examined: a manager sending megabytes costs the
/// copy, not a scan of every character.
pub fn sanitize(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max && !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(max) + 32);
    let mut taken = 0;
    for (i, c) in text.char_indices() {
        let before = out.len();
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
        if out.len() > max {
            out.truncate(before);
            break;
        }
        taken = i + c.len_utf8();
    }
    if taken < text.len() {
        out.push_str(&format!(" …[{} bytes cut]", text.len() - taken));
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_length_capped() {
        assert!(matches!(sanitize("plain", 10), Cow::Borrowed("plain")));
        assert_eq!(
            sanitize("a\nINFO loaded hardware manager\r\u{1b}[2m", 100),
            "a\\nINFO loaded hardware manager\\r\\u{1b}[2m"
        );
        assert_eq!(sanitize("éééé", 5), "éé …[4 bytes cut]");
        assert!(!sanitize(&"x\n".repeat(1000), 64).contains('\n'));
    }
}
