//! oslo.config's INI dialect (`oslo_config/iniparser.py`), keeping the line
//! of every assignment for diagnostics.

/// One `key = value` with its section and the line the key is on.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub section: String,
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A syntax error: (line, message).
pub type SyntaxError = (usize, String);

/// Parses `text`. Rules as oslo: trailing whitespace ignored; blank lines end
/// continuations; lines starting with space/tab continue the previous value
/// (joined with `\n`); `#`/`;` start comments; `key = v` or `key: v`
/// (whichever separator comes first); a value wrapped in matching quotes
/// loses them; assignments before any section are an error.
pub fn parse(text: &str) -> Result<Vec<Assignment>, SyntaxError> {
    let mut out: Vec<Assignment> = Vec::new();
    let mut section: Option<String> = None;
    let mut open: Option<Assignment> = None;
    let finish = |a: Assignment, out: &mut Vec<Assignment>| {
        let mut a = a;
        let v = &a.value;
        if v.len() > 1
            && (v.starts_with('"') && v.ends_with('"') || v.starts_with('\'') && v.ends_with('\''))
        {
            a.value = v[1..v.len() - 1].to_string();
        }
        out.push(a);
    };
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            if let Some(a) = open.take() {
                finish(a, &mut out);
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match open.as_mut() {
                Some(a) => {
                    a.value.push('\n');
                    a.value.push_str(line.trim_start());
                    continue;
                }
                None => {
                    return Err((
                        lineno,
                        format!("unexpected continuation line: {:?}", line.trim()),
                    ))
                }
            }
        }
        if let Some(a) = open.take() {
            finish(a, &mut out);
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.strip_suffix(']').ok_or_else(|| {
                (
                    lineno,
                    format!("section header without closing ']': {line:?}"),
                )
            })?;
            if name.trim().is_empty() {
                return Err((lineno, "empty section name".into()));
            }
            section = Some(name.to_string());
        } else if line.starts_with(['#', ';']) {
            continue;
        } else {
            let pos = match (line.find('='), line.find(':')) {
                (Some(e), Some(c)) => e.min(c),
                (Some(p), None) | (None, Some(p)) => p,
                (None, None) => {
                    return Err((
                        lineno,
                        format!("not a section, comment or 'key = value': {line:?}"),
                    ))
                }
            };
            let key = line[..pos].trim();
            if key.is_empty() {
                return Err((lineno, format!("empty key: {line:?}")));
            }
            let Some(sec) = section.clone() else {
                return Err((lineno, format!("'{key}' appears before any [section]")));
            };
            open = Some(Assignment {
                section: sec,
                key: key.to_string(),
                value: line[pos + 1..].trim().to_string(),
                line: lineno,
            });
        }
    }
    if let Some(a) = open.take() {
        finish(a, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_comments_continuations_quotes() {
        let text = "# c\n[DEFAULT]\napi_url = http://a\n; x\nlisten_port: 1\nmulti = a\n  b\n\nq = \"quoted\"\n[mdns]\nuse_mdns=true\n";
        let a = parse(text).expect("parses");
        let got: Vec<(&str, &str, &str, usize)> = a
            .iter()
            .map(|a| (a.section.as_str(), a.key.as_str(), a.value.as_str(), a.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("DEFAULT", "api_url", "http://a", 3),
                ("DEFAULT", "listen_port", "1", 5),
                ("DEFAULT", "multi", "a\nb", 6),
                ("DEFAULT", "q", "quoted", 9),
                ("mdns", "use_mdns", "true", 11),
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("x = 1\n").expect_err("error").0, 1);
        assert_eq!(parse("[DEFAULT]\n\n[broken\n").expect_err("error").0, 3);
        assert_eq!(
            parse("[DEFAULT]\njust words\n").expect_err("error"),
            (
                2,
                "not a section, comment or 'key = value': \"just words\"".into()
            )
        );
        assert_eq!(parse(" cont\n").expect_err("error").0, 1);
        assert_eq!(parse("[DEFAULT]\n = v\n").expect_err("error").0, 2);
    }
}
