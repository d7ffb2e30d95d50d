//! The hint expression language: oslo.utils'
//! `specs_matcher` grammar and `match`, and IPA's normalisation
//! (`device_hints._normalize_hint_expression`).
//!
//! The code mirrors the Python pipeline step by step rather than building a
//! cleaner AST, because IPA's observable behaviour depends on its quirks:
//! operators need no space after them (`>=100`), values are split on the
//! operator text, string values are lowercased and URL-quoted into a single
//! token before they are compared, and `match` only looks at the first value
//! of a unary operator.

/// `unary_ops`, in pyparsing's `MatchFirst` order (`==` before `=`, `<in>`
/// before `<`, `s<=` before `s<`).
const UNARY_OPS: [&str; 14] = [
    "==", "=", "!=", "<in>", ">=", "<=", ">", "<", "s==", "s!=", "s<=", "s<", "s>=", "s>",
];
pub(crate) const ALL_IN: &str = "<all-in>";
pub(crate) const OR: &str = "<or>";
pub(crate) const RANGE_IN: &str = "<range-in>";

/// Operators comparing `float(x)` with `float(y)` (`=` is the legacy `>=`).
pub(crate) const NUMERIC_OPS: [&str; 7] = ["=", "==", "!=", "<", "<=", ">", ">="];

/// The tokens `make_grammar().parseString(spec)` returns: `[op, value…]`
/// for an operator expression, `[atom]` otherwise. `None` is pyparsing's
/// `ParseException`. Like `parseString` without `parseAll`, trailing text
/// the grammar does not consume is ignored.
pub(crate) fn tokens(spec: &str) -> Option<Vec<String>> {
    let p = Parser(spec);
    p.disjunction()
        .or_else(|| p.nary())
        .or_else(|| p.range())
        .or_else(|| p.unary())
        .or_else(|| p.atom(0).map(|(atom, _)| vec![atom]))
}

struct Parser<'a>(&'a str);

impl Parser<'_> {
    /// pyparsing skips whitespace before every element.
    fn skip_ws(&self, pos: usize) -> usize {
        let rest = &self.0[pos..];
        pos + (rest.len() - rest.trim_start().len())
    }

    /// Position after `lit` (after leading whitespace), if it is there.
    fn literal(&self, pos: usize, lit: &str) -> Option<usize> {
        let p = self.skip_ws(pos);
        self.0[p..].starts_with(lit).then_some(p + lit.len())
    }

    /// `atom = ~(keyword) + Regex(r"\S+")`: a run of non-space characters
    /// that does not start with any operator.
    fn atom(&self, pos: usize) -> Option<(String, usize)> {
        let p = self.skip_ws(pos);
        let rest = &self.0[p..];
        let keyword = UNARY_OPS
            .iter()
            .chain(&[ALL_IN, OR, RANGE_IN])
            .any(|k| rest.starts_with(k));
        if keyword {
            return None;
        }
        let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        (len > 0).then(|| (rest[..len].to_string(), p + len))
    }

    /// `OneOrMore(or_ + atom)`, the `<or>` tokens collapsed into one.
    fn disjunction(&self) -> Option<Vec<String>> {
        let mut out = vec![OR.to_string()];
        let mut pos = 0;
        while let Some((atom, next)) = self.literal(pos, OR).and_then(|p| self.atom(p)) {
            out.push(atom);
            pos = next;
        }
        (out.len() > 1).then_some(out)
    }

    /// `<all-in>` + `OneOrMore(atom)`.
    fn nary(&self) -> Option<Vec<String>> {
        let mut pos = self.literal(0, ALL_IN)?;
        let mut out = vec![ALL_IN.to_string()];
        while let Some((atom, next)) = self.atom(pos) {
            out.push(atom);
            pos = next;
        }
        (out.len() > 1).then_some(out)
    }

    /// `<range-in>` + four atoms.
    fn range(&self) -> Option<Vec<String>> {
        let mut pos = self.literal(0, RANGE_IN)?;
        let mut out = vec![RANGE_IN.to_string()];
        for _ in 0..4 {
            let (atom, next) = self.atom(pos)?;
            out.push(atom);
            pos = next;
        }
        Some(out)
    }

    /// `unary_ops + atom`: the first operator literal that matches is kept
    /// even when no atom follows (pyparsing does not backtrack into a
    /// `MatchFirst`).
    fn unary(&self) -> Option<Vec<String>> {
        let p = self.skip_ws(0);
        let op = UNARY_OPS.iter().find(|op| self.0[p..].starts_with(*op))?;
        let (atom, _) = self.atom(p + op.len())?;
        Some(vec![op.to_string(), atom])
    }
}

/// Why an expression is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExprError {
    Empty,
    Syntax,
}

/// `_extract_hint_operator_and_values` on an already trimmed and lowercased
/// expression: `("", [expression])` without an operator, else the operator
/// and the pieces between its occurrences (`re.split(op, expression)`).
pub(crate) fn extract(expression: &str) -> Result<(String, Vec<String>), ExprError> {
    if expression.is_empty() {
        return Err(ExprError::Empty);
    }
    let tokens = tokens(expression).ok_or(ExprError::Syntax)?;
    if tokens.len() <= 1 {
        return Ok((String::new(), vec![expression.to_string()]));
    }
    let op = tokens[0].clone();
    // Python filters empty pieces *before* stripping, so a blank piece
    // survives as "".
    let values = expression
        .split(op.as_str())
        .filter(|v| !v.is_empty())
        .map(|v| v.trim().to_string())
        .collect();
    Ok((op, values))
}

/// `_normalize_hint_expression`: trim, lowercase, URL-quote each value and
/// rejoin as `op v1 op v2`. Used on hint values and device values alike.
pub(crate) fn normalise(raw: &str) -> Result<String, ExprError> {
    let expression = raw.trim().to_lowercase();
    let (op, values) = extract(&expression)?;
    let joined = values
        .iter()
        .map(|v| format!(" {} ", quote(v)))
        .collect::<Vec<_>>()
        .join(&op);
    Ok(format!("{op}{joined}").trim().to_string())
}

/// `urllib.parse.quote(value)` (safe `/`): RFC 3986 unreserved characters
/// and `/` stay, every other UTF-8 byte becomes `%XX`.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a spec is matched against: a normalised device string, or the
/// device size in GiB.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    Text(&'a str),
    Number(f64),
}

/// `specs_matcher.match(subject, spec)`. `Err` stands for the exceptions
/// Python raises (a non-numeric operand of a numeric operator, a string
/// operator applied to a number, …).
pub(crate) fn spec_match(subject: Subject<'_>, spec: &str) -> Result<bool, String> {
    let spec = spec.trim();
    let tree = tokens(spec).unwrap_or_else(|| vec![spec.to_string()]);
    let (op, args) = match tree.split_first() {
        Some((only, [])) => return Ok(matches!(subject, Subject::Text(x) if x == only)),
        Some((op, args)) => (op.as_str(), args),
        None => return Ok(false),
    };
    let first = args.first().map(String::as_str).unwrap_or_default();
    if NUMERIC_OPS.contains(&op) {
        let x = match subject {
            Subject::Number(x) => x,
            Subject::Text(x) => py_float(x).ok_or_else(|| format!("{x:?} is not a number"))?,
        };
        let y = py_float(first).ok_or_else(|| format!("{first:?} is not a number"))?;
        return Ok(match op {
            "==" => x == y,
            "!=" => x != y,
            "<" => x < y,
            "<=" => x <= y,
            ">" => x > y,
            // `>=` and the legacy `=`.
            _ => x >= y,
        });
    }
    match (op, subject) {
        ("s==", Subject::Text(x)) => Ok(x == first),
        ("s!=", Subject::Text(x)) => Ok(x != first),
        ("s<", Subject::Text(x)) => Ok(x < first),
        ("s<=", Subject::Text(x)) => Ok(x <= first),
        ("s>", Subject::Text(x)) => Ok(x > first),
        ("s>=", Subject::Text(x)) => Ok(x >= first),
        // A float is never equal to a string.
        ("s==", Subject::Number(_)) => Ok(false),
        ("s!=", Subject::Number(_)) => Ok(true),
        ("<in>", Subject::Text(x)) => Ok(x.contains(first)),
        // `x == a` for string alternatives: never true for a float.
        ("<or>", Subject::Text(x)) => Ok(args.iter().any(|a| a == x)),
        ("<or>", Subject::Number(_)) => Ok(false),
        ("<range-in>", Subject::Text(x)) => range_in(x, args),
        (op, _) => Err(format!("operator {op} cannot compare this value")),
    }
}

/// `_range_in`: `[`/`(` lower bound, upper bound `]`/`)`.
fn range_in(x: &str, args: &[String]) -> Result<bool, String> {
    let [open, low, high, close] = args else {
        return Err("<range-in> needs `[ low high ]`".to_string());
    };
    let x = py_float(x).ok_or_else(|| format!("{x:?} is not a number"))?;
    let (low, high) = match (py_float(low), py_float(high)) {
        (Some(l), Some(h)) if l <= h => (l, h),
        _ => return Err("<range-in> bounds must be numbers, low <= high".to_string()),
    };
    let lower = match open.as_str() {
        "[" => x >= low,
        "(" => x > low,
        _ => return Err("<range-in> must open with [ or (".to_string()),
    };
    let upper = match close.as_str() {
        "]" => x <= high,
        ")" => x < high,
        _ => return Err("<range-in> must close with ] or )".to_string()),
    };
    Ok(lower && upper)
}

/// Python's `float(text)` (without its `_` digit separators).
pub(crate) fn py_float(text: &str) -> Option<f64> {
    text.trim().parse().ok()
}

/// Python's `int(text)` for a hint value: optional sign, decimal digits
/// (single `_` separators allowed between digits). Returns whether the
/// number is positive.
pub(crate) fn py_int_positive(text: &str) -> Option<bool> {
    let text = text.trim();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    well_formed.then(|| !negative && digits.bytes().any(|b| (b'1'..=b'9').contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(spec: &str) -> Option<Vec<String>> {
        tokens(spec)
    }

    fn v(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn grammar_follows_pyparsing() {
        assert_eq!(toks("foo bar"), v(&["foo"]));
        assert_eq!(toks("s== foo"), v(&["s==", "foo"]));
        // No space needed after an operator.
        assert_eq!(toks(">=100"), v(&[">=", "100"]));
        assert_eq!(toks("=5"), v(&["=", "5"]));
        assert_eq!(toks("s<=b"), v(&["s<=", "b"]));
        assert_eq!(toks("<in> x"), v(&["<in>", "x"]));
        assert_eq!(toks("<or> a <or> b"), v(&["<or>", "a", "b"]));
        // A trailing `<or>` without a value is left unparsed.
        assert_eq!(toks("<or> a <or>"), v(&["<or>", "a"]));
        assert_eq!(toks("<all-in> a b"), v(&["<all-in>", "a", "b"]));
        assert_eq!(
            toks("<range-in> [ 1 2 ]"),
            v(&["<range-in>", "[", "1", "2", "]"])
        );
        // An operator alone, or followed by another operator, does not parse.
        assert_eq!(toks("s=="), None);
        assert_eq!(toks(">= <5"), None);
        // `<or>` alone is `<` followed by the atom `or>`.
        assert_eq!(toks("<or>"), v(&["<", "or>"]));
    }

    #[test]
    fn normalisation_quotes_values_and_keeps_operators() {
        assert_eq!(normalise("  Foo Bar ").as_deref(), Ok("foo%20bar"));
        assert_eq!(normalise("s== Foo Bar").as_deref(), Ok("s== foo%20bar"));
        assert_eq!(
            normalise("<or> foo bar <or> Baz").as_deref(),
            Ok("<or> foo%20bar <or> baz")
        );
        assert_eq!(normalise("0:0:0:0").as_deref(), Ok("0%3A0%3A0%3A0"));
        assert_eq!(
            normalise("/dev/disk/by-path/pci-0000:00:17.0-ata-1.0").as_deref(),
            Ok("/dev/disk/by-path/pci-0000%3A00%3A17.0-ata-1.0")
        );
        assert_eq!(normalise(">=100").as_deref(), Ok(">= 100"));
        assert_eq!(normalise("Ünï").as_deref(), Ok("%C3%BCn%C3%AF"));
        assert_eq!(normalise("   "), Err(ExprError::Empty));
        assert_eq!(normalise("s=="), Err(ExprError::Syntax));
    }

    #[test]
    fn string_operators() {
        let t = Subject::Text;
        assert_eq!(spec_match(t("abc"), "s== abc"), Ok(true));
        assert_eq!(spec_match(t("abc"), "s!= abc"), Ok(false));
        assert_eq!(spec_match(t("abc"), "s< abd"), Ok(true));
        assert_eq!(spec_match(t("abc"), "s<= abc"), Ok(true));
        assert_eq!(spec_match(t("abc"), "s> abb"), Ok(true));
        assert_eq!(spec_match(t("abc"), "s>= abd"), Ok(false));
        assert_eq!(spec_match(t("samsung%20mz7"), "<in> mz"), Ok(true));
        assert_eq!(spec_match(t("b"), "<or> a <or> b"), Ok(true));
        assert_eq!(spec_match(t("c"), "<or> a <or> b"), Ok(false));
        // No operator: plain equality.
        assert_eq!(spec_match(t("abc"), "abc"), Ok(true));
    }

    #[test]
    fn numeric_operators() {
        let n = Subject::Number;
        assert_eq!(spec_match(n(8.0), "== 8"), Ok(true));
        assert_eq!(spec_match(n(8.5), "== 8"), Ok(false));
        assert_eq!(spec_match(n(8.0), "!= 8"), Ok(false));
        assert_eq!(spec_match(n(8.0), "< 9"), Ok(true));
        assert_eq!(spec_match(n(8.0), "<= 8"), Ok(true));
        assert_eq!(spec_match(n(8.0), "> 8"), Ok(false));
        assert_eq!(spec_match(n(8.0), ">= 8"), Ok(true));
        // Legacy `=` means `>=`.
        assert_eq!(spec_match(n(16.0), "= 8"), Ok(true));
        assert_eq!(spec_match(n(4.0), "= 8"), Ok(false));
        // `<or>` compares the float with strings: never equal.
        assert_eq!(spec_match(n(8.0), "<or> 8 <or> 16"), Ok(false));
        assert_eq!(spec_match(n(8.0), "s== 8"), Ok(false));
        assert_eq!(spec_match(n(8.0), "s!= 8"), Ok(true));
        assert!(spec_match(n(8.0), "<in> 8").is_err());
        // Numeric operators parse numeric strings.
        assert_eq!(spec_match(Subject::Text("10"), ">= 9.5"), Ok(true));
        assert!(spec_match(Subject::Text("abc"), ">= 9").is_err());
        assert_eq!(
            spec_match(Subject::Text("15"), "<range-in> ( 10 20 ]"),
            Ok(true)
        );
        assert_eq!(
            spec_match(Subject::Text("20"), "<range-in> [ 10 20 )"),
            Ok(false)
        );
    }

    #[test]
    fn python_int() {
        assert_eq!(py_int_positive("100"), Some(true));
        assert_eq!(py_int_positive(" +1_000 "), Some(true));
        assert_eq!(py_int_positive("0"), Some(false));
        assert_eq!(py_int_positive("-5"), Some(false));
        assert_eq!(py_int_positive("10.0"), None);
        assert_eq!(py_int_positive("1__0"), None);
        assert_eq!(py_int_positive(""), None);
    }
}
