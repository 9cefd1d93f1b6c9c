//! YAML text to a `serde_norway::Value`, built while the parser streams its events.
//!
//! `serde_norway::from_str` first collects every event of the document (about 30 bytes of events per byte of text:
//! 200 MB for a 7 MB topology) and builds the value afterwards; this builds it in one pass with saphyr-parser (which
//! also gives the positions of `source.rs`). Plain scalars resolve as serde_norway resolves them (YAML 1.2 core
//! schema: `null`/`~`, `true`/`false` in three spellings, decimal/0x/0o/0b integers, floats, `.inf`, `.nan`;
//! leading zeros stay strings), so what a topology means does not depend on which of the two read it.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_norway::{Mapping, Number, Value};

/// Nesting deeper than this is refused: serde's deserializers recurse once per level (serde_norway's limit too).
const MAX_DEPTH: usize = 128;
/// Aliases may repeat at most this many nodes per event read (serde_norway's repetition limit), so a few lines of
/// nested aliases cannot expand into gigabytes.
const MAX_REPEAT_PER_EVENT: usize = 100;

/// A syntax or structure problem, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub(crate) line: usize,
    pub(crate) col: usize,
    pub(crate) message: String,
}

/// An open sequence or mapping; a mapping holds its key (and the key's position) until the value arrives.
enum Open {
    Seq(Vec<Value>),
    Map(Mapping, Option<(Value, (usize, usize))>),
}

/// An open collection, its anchor id, and the nodes inside it so far.
struct Frame {
    open: Open,
    anchor: usize,
    nodes: usize,
}

/// The value of a one-document YAML text (`Null` for an empty one).
pub(crate) fn parse(text: &str) -> Result<Value, YamlError> {
    let mut stack: Vec<Frame> = Vec::new();
    // Anchored nodes, with how many nodes each holds (what an alias to it repeats).
    let mut anchors: HashMap<usize, (Value, usize)> = HashMap::new();
    let (mut events, mut repeated) = (0usize, 0usize);
    let mut root: Option<Value> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| YamlError {
            line: e.marker().line(),
            col: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        let at = (span.start.line(), span.start.col() + 1);
        let fail = |message: String| YamlError {
            line: at.0,
            col: at.1,
            message,
        };
        events += 1;
        let (node, anchor, size) = match event {
            Event::DocumentStart(_) if root.is_some() => {
                return Err(fail(
                    "a topology file holds one YAML document: remove this `---` and what follows, or put it in a \
                     file of its own"
                        .into(),
                ));
            }
            Event::Scalar(text, style, anchor, tag) => (
                scalar(text, style, tag.as_deref()).map_err(fail)?,
                anchor,
                1,
            ),
            Event::SequenceStart(anchor, tag) => {
                open(&mut stack, Open::Seq(Vec::new()), anchor, tag.as_deref()).map_err(fail)?;
                continue;
            }
            Event::MappingStart(anchor, tag) => {
                open(
                    &mut stack,
                    Open::Map(Mapping::new(), None),
                    anchor,
                    tag.as_deref(),
                )
                .map_err(fail)?;
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(Frame {
                    open,
                    anchor,
                    nodes,
                }) = stack.pop()
                else {
                    continue;
                };
                let value = match open {
                    Open::Seq(items) => Value::Sequence(items),
                    Open::Map(map, _) => Value::Mapping(map),
                };
                (value, anchor, nodes + 1)
            }
            Event::Alias(id) => {
                let Some((value, size)) = anchors.get(&id) else {
                    return Err(fail(
                        "an alias to an anchor that is not defined above it".into(),
                    ));
                };
                repeated += size;
                if repeated > events.saturating_mul(MAX_REPEAT_PER_EVENT) {
                    return Err(fail(
                        "aliases repeat too much of the document: write the values out".into(),
                    ));
                }
                (value.clone(), 0, *size)
            }
            _ => continue,
        };
        if anchor != 0 {
            anchors.insert(anchor, (node.clone(), size));
        }
        let Some(Frame { open, nodes, .. }) = stack.last_mut() else {
            root = Some(node);
            continue;
        };
        *nodes += size;
        match open {
            Open::Seq(items) => items.push(node),
            Open::Map(map, key) => match key.take() {
                None => *key = Some((node, at)),
                Some((k, (line, col))) if map.contains_key(&k) => {
                    return Err(YamlError {
                        line,
                        col,
                        message: format!(
                            "duplicate entry with key {}: each key appears once in a mapping",
                            show(&k)
                        ),
                    });
                }
                Some((k, _)) => {
                    map.insert(k, node);
                }
            },
        }
    }
    Ok(root.unwrap_or(Value::Null))
}

/// Opens a collection, unless it is tagged or nested too deep.
fn open(
    stack: &mut Vec<Frame>,
    open: Open,
    anchor: usize,
    tag: Option<&Tag>,
) -> Result<(), String> {
    if let Some(tag) = tag {
        return Err(tag_unused(tag));
    }
    if stack.len() >= MAX_DEPTH {
        return Err(format!("nested more than {MAX_DEPTH} levels deep"));
    }
    stack.push(Frame {
        open,
        anchor,
        nodes: 0,
    });
    Ok(())
}

/// How a key is named in a message.
fn show(key: &Value) -> String {
    match key {
        Value::String(s) => format!("{s:?}"),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        _ => "(a collection)".into(),
    }
}

fn tag_unused(tag: &Tag) -> String {
    format!(
        "YAML tags are not used in a topology: remove `{}{}`",
        tag.handle, tag.suffix
    )
}

/// A scalar's value: quoted and block scalars are strings; plain ones resolve by the core schema; the core tags
/// `!!str`, `!!int`, `!!float`, `!!bool` and `!!null` say which.
fn scalar(text: Cow<'_, str>, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let Some(tag) = tag else {
        return Ok(match style {
            ScalarStyle::Plain => plain(&text).unwrap_or_else(|| Value::String(text.into_owned())),
            _ => Value::String(text.into_owned()),
        });
    };
    let want = |what: &str, v: Option<Value>| {
        v.ok_or_else(|| format!("`{text}` is not {what} (tagged `!!{}`)", tag.suffix))
    };
    match (tag.is_yaml_core_schema(), tag.suffix.as_str()) {
        (true, "str") => Ok(Value::String(text.into_owned())),
        (true, "null") => want("null", is_null(&text).then_some(Value::Null)),
        (true, "bool") => want("a boolean", boolean(&text).map(Value::Bool)),
        (true, "int") => want("an integer", integer(&text).map(Value::Number)),
        (true, "float") => want(
            "a float",
            float(&text).map(|f| Value::Number(Number::from(f))),
        ),
        _ => Err(tag_unused(tag)),
    }
}

/// A plain scalar that is not a string.
fn plain(text: &str) -> Option<Value> {
    if text.is_empty() || is_null(text) {
        return Some(Value::Null);
    }
    if let Some(b) = boolean(text) {
        return Some(Value::Bool(b));
    }
    // Most scalars of a topology are names: nothing but a digit, sign or dot starts a number.
    if !text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return None;
    }
    if leading_zero(text) {
        return None;
    }
    integer(text)
        .map(Value::Number)
        .or_else(|| float(text).map(|f| Value::Number(Number::from(f))))
}

fn is_null(text: &str) -> bool {
    matches!(text, "null" | "Null" | "NULL" | "~")
}

fn boolean(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// `0123` is a string by YAML 1.2, not an octal or a decimal.
fn leading_zero(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    digits.len() > 1 && digits.starts_with('0') && digits[1..].bytes().all(|b| b.is_ascii_digit())
}

/// Decimal, `0x`, `0o` or `0b`, with an optional sign, in the range of u64 or i64.
fn integer(text: &str) -> Option<Number> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if unsigned.starts_with(['+', '-']) {
        return None;
    }
    let (radix, digits) = [("0x", 16), ("0o", 8), ("0b", 2)]
        .iter()
        .find_map(|(prefix, radix)| unsigned.strip_prefix(prefix).map(|d| (*radix, d)))
        .unwrap_or((10, unsigned));
    if digits.starts_with(['+', '-']) || (radix == 10 && leading_zero(text)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok();
    match (negative, magnitude) {
        (false, Some(m)) => Some(Number::from(m)),
        (true, Some(0)) => Some(Number::from(0u64)),
        (true, Some(m)) if m <= i64::MIN.unsigned_abs() => {
            Some(Number::from(0i64.wrapping_sub_unsigned(m)))
        }
        _ => None,
    }
}

fn float(text: &str) -> Option<f64> {
    let unsigned = match text.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => text,
    };
    match (unsigned, text) {
        (".inf" | ".Inf" | ".INF", _) => Some(f64::INFINITY),
        (_, "-.inf" | "-.Inf" | "-.INF") => Some(f64::NEG_INFINITY),
        (_, ".nan" | ".NaN" | ".NAN") => Some(f64::NAN),
        _ => unsigned.parse::<f64>().ok().filter(|f| f.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value serde_norway gives, against ours, for texts that cover each way a scalar resolves.
    #[test]
    fn resolves_as_serde_norway_does() {
        let scalars = [
            "",
            "~",
            "null",
            "Null",
            "NULL",
            "nul",
            "true",
            "True",
            "TRUE",
            "tRue",
            "false",
            "yes",
            "no",
            "on",
            "0",
            "7",
            "-7",
            "+7",
            "007",
            "-007",
            "0x1F",
            "0X1F",
            "-0x1F",
            "0o17",
            "0b101",
            "+0x1F",
            "0x-1",
            "--1",
            "+-1",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "1.5",
            "-1.5",
            "+1.5",
            "1e3",
            "1E-3",
            ".5",
            "5.",
            ".inf",
            "-.inf",
            "+.inf",
            ".nan",
            ".NaN",
            "nan",
            "inf",
            "1_000",
            "1.2.3",
            "10.0.1.5",
            "2001:db8::1",
            "12:30",
            "0.0.0.0/0",
            "host-1",
            "A",
            "-",
            ".",
            "+",
            "0.1e",
            "1e400",
            "00.5",
            "0.5",
            "-0",
            "+0",
            "0x",
            "vpc-0a1b2c3d",
        ];
        for s in scalars {
            let doc = format!("k: {s}\n");
            // serde_norway refuses integers beyond 64 bits outright; ours are strings (the field then says what it wants).
            let Ok(theirs) = serde_norway::from_str::<Value>(&doc) else {
                continue;
            };
            let ours = parse(&doc).expect(&doc);
            let (theirs, ours) = (&theirs["k"], &ours["k"]);
            // NaN is never equal to itself.
            let same = theirs == ours
                || (theirs.as_f64().is_some_and(f64::is_nan)
                    && ours.as_f64().is_some_and(f64::is_nan));
            assert!(same, "{s:?}: serde_norway {theirs:?}, ours {ours:?}");
        }
    }

    #[test]
    fn builds_nested_values_with_quotes_aliases_and_tags() {
        let doc = "a: &x [1, '2', \"3\", {b: c}]\nd: *x\ne: !!str 10\nf: |\n  block\n";
        let theirs: Value = serde_norway::from_str(doc).expect("serde_norway");
        assert_eq!(parse(doc).expect("ours"), theirs);
        assert_eq!(parse("").expect("empty"), Value::Null);
        assert_eq!(parse("# only a comment\n").expect("comment"), Value::Null);
    }

    #[test]
    fn refuses_what_cannot_be_a_topology_with_its_position() {
        let cases = [
            ("a: 1\na: 2\n", 2, 1, "duplicate entry with key \"a\""),
            ("a: 1\n---\nb: 2\n", 2, 1, "one YAML document"),
            ("a: !custom 1\n", 1, 4, "YAML tags are not used"),
            ("a: !!int x\n", 1, 4, "`x` is not an integer"),
            ("a: *nowhere\n", 1, 4, ""),
            ("a: [1, 2\n", 2, 1, ""),
        ];
        for (doc, line, col, words) in cases {
            let err = parse(doc).expect_err(doc);
            assert_eq!((err.line, err.col), (line, col), "{doc:?}: {err:?}");
            assert!(err.message.contains(words), "{doc:?}: {err:?}");
        }
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(
            parse(&deep)
                .expect_err("deep")
                .message
                .contains("nested more than 128")
        );
        let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, c) in ('b'..='j').enumerate() {
            let prev = (b'a' + i as u8) as char;
            laughs.push_str(&format!("{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(
            parse(&laughs)
                .expect_err("laughs")
                .message
                .contains("aliases repeat")
        );
    }
}
