//! Where each YAML node sits in its file, and how problems found anywhere are reported against it.
//!
//! Every check in `topology/` names the problem by its YAML path (`vpcs[1].subnets[0].cidr`); this module turns the
//! path into `FILE:LINE:COL` by walking the parser's events once.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use saphyr_parser::{Event, Parser};
use serde::de::DeserializeOwned;

/// One step of a YAML path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A YAML path such as `vpcs[1].subnets[0].cidr`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct YamlPath(pub(crate) Vec<Seg>);

impl YamlPath {
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        Self(segs)
    }
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }
    fn parent(&self) -> Option<Self> {
        let mut segs = self.0.clone();
        segs.pop()?;
        Some(Self(segs))
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => write!(f, "{key}")?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A problem in a topology file, printed as `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: Arc<str>,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// One topology file's text and the position of every node in it.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub(crate) name: Arc<str>,
    text: String,
    /// Built on the first diagnostic: a valid file never pays for it (at 100,000 records it was most of `check`).
    positions: OnceLock<Positions>,
}

#[derive(Debug, Default)]
struct Positions {
    values: HashMap<YamlPath, (usize, usize)>,
    keys: HashMap<YamlPath, (usize, usize)>,
}

impl SourceFile {
    pub(crate) fn new(name: &str, text: &str) -> Self {
        Self {
            name: Arc::from(name),
            text: text.to_string(),
            positions: OnceLock::new(),
        }
    }

    fn positions(&self) -> &Positions {
        self.positions.get_or_init(|| index(&self.text))
    }

    /// The position of the value at `path`, or of its nearest ancestor that exists.
    pub(crate) fn at(&self, path: &YamlPath, message: impl Into<String>) -> Diagnostic {
        let positions = self.positions();
        let mut probe = Some(path.clone());
        let (line, col) = loop {
            match probe {
                Some(p) => match positions.values.get(&p) {
                    Some(pos) => break *pos,
                    None => probe = p.parent(),
                },
                None => break (1, 1),
            }
        };
        self.diag(line, col, message)
    }

    /// The position of the key at `path` (for unknown fields), falling back to its value.
    pub(crate) fn at_key(&self, path: &YamlPath, message: impl Into<String>) -> Diagnostic {
        match self.positions().keys.get(path) {
            Some(&(line, col)) => self.diag(line, col, message),
            None => self.at(path, message),
        }
    }
}

/// Walks the parser's events once, recording the position of every value and mapping key. A syntax error ends the
/// walk (serde reports it, with its position, before any position is asked for).
fn index(text: &str) -> Positions {
    let mut file = Positions::default();
    // Per open container: its path, and for mappings whether the next scalar is a key.
    enum Frame {
        Map {
            path: YamlPath,
            pending_key: Option<String>,
        },
        Seq {
            path: YamlPath,
            next: usize,
        },
    }
    let mut stack: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { break };
        let pos = (span.start.line(), span.start.col() + 1);
        let is_start = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(_)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
        );
        if is_start {
            // Is this node a mapping key? Then remember it and wait for its value.
            if let Some(Frame::Map { path, pending_key }) = stack.last_mut()
                && pending_key.is_none()
            {
                if let Event::Scalar(key, ..) = &event {
                    let key = key.to_string();
                    file.keys.insert(path.key(&key), pos);
                    *pending_key = Some(key);
                }
                continue;
            }
            let path = match stack.last_mut() {
                Some(Frame::Map { path, pending_key }) => {
                    path.key(&pending_key.take().unwrap_or_default())
                }
                Some(Frame::Seq { path, next }) => {
                    *next += 1;
                    path.index(*next - 1)
                }
                None => YamlPath::default(),
            };
            file.values.insert(path.clone(), pos);
            match event {
                Event::MappingStart(..) => stack.push(Frame::Map {
                    path,
                    pending_key: None,
                }),
                Event::SequenceStart(..) => stack.push(Frame::Seq { path, next: 0 }),
                _ => {}
            }
        } else if matches!(event, Event::MappingEnd | Event::SequenceEnd) {
            stack.pop();
        }
    }
    file
}

impl SourceFile {
    fn diag(&self, line: usize, col: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.name.clone(),
            line,
            col,
            message: message.into(),
        }
    }

    /// Deserializes `value` by moving it, for a value nothing needs afterwards (a whole file: copying its strings
    /// was a quarter of the load's peak at 100,000 records). `None` if anything in it is unknown or wrong; `item`
    /// then says what, from a fresh copy.
    pub(crate) fn item_moved<T: DeserializeOwned>(value: serde_norway::Value) -> Option<T> {
        let mut unknown = false;
        let mut on_ignored = |_: serde_ignored::Path<'_>| unknown = true;
        let ignored = serde_ignored::Deserializer::new(value, &mut on_ignored);
        T::deserialize(ignored).ok().filter(|_| !unknown)
    }

    /// Deserializes one item found at `path`, reporting every unknown key and the first type error, each at its
    /// position. Returns `None` when the item can't be used.
    pub(crate) fn item<T: DeserializeOwned>(
        &self,
        value: &serde_norway::Value,
        path: &YamlPath,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<T> {
        // serde stops at the first unknown field of a `deny_unknown_fields` struct: report it, drop the key and try
        // again, so every unknown key of the item is reported and the item itself is still checked.
        // Borrowed until a key has to be removed.
        let mut value = std::borrow::Cow::Borrowed(value);
        for _ in 0..MAX_UNKNOWN_KEYS {
            let mut unknown = Vec::new();
            let mut on_ignored = |p: serde_ignored::Path<'_>| {
                let mut segs = Vec::new();
                ignored_segments(&p, &mut segs);
                unknown.push(segs);
            };
            let ignored = serde_ignored::Deserializer::new(value.as_ref(), &mut on_ignored);
            let result: Result<T, _> = serde_path_to_error::deserialize(ignored);
            for segs in unknown {
                let mut full = path.clone();
                full.0.extend(segs);
                let key = match full.0.last() {
                    Some(Seg::Key(key)) => key.clone(),
                    _ => String::new(),
                };
                let known = known_keys(&full.0[..full.0.len().saturating_sub(1)]);
                diags.push(self.at_key(&full, unknown_field_message(&key, &known)));
            }
            let err = match result {
                Ok(item) => return Some(item),
                Err(err) => err,
            };
            let mut rel = Vec::new();
            for seg in err.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Seq { index } => rel.push(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => rel.push(Seg::Key(key.clone())),
                    _ => {}
                }
            }
            let inner = err.into_inner().to_string();
            let Some(field) = inner.strip_prefix("unknown field ") else {
                let mut full = path.clone();
                full.0.extend(rel);
                diags.push(self.at(&full, format!("{full}: {inner}")));
                return None;
            };
            // deny_unknown_fields: same wording as the serde_ignored path above. The error's path ends with the
            // unknown key itself; the known keys are those of the mapping that holds it.
            let key = field.split('`').nth(1).unwrap_or(field).to_string();
            if matches!(rel.last(), Some(Seg::Key(last)) if *last == key) {
                rel.pop();
            }
            let mut full = path.clone();
            full.0.extend(rel.iter().cloned());
            let known = known_keys(&full.0);
            diags.push(self.at_key(&full.key(&key), unknown_field_message(&key, &known)));
            if !remove_key(value.to_mut(), &rel, &key) {
                return None;
            }
        }
        None
    }
}

/// Unknown keys reported per item before giving up on it.
const MAX_UNKNOWN_KEYS: usize = 64;

/// Removes `key` from the mapping at `path` inside `value`; false when there is no such key.
fn remove_key(value: &mut serde_norway::Value, path: &[Seg], key: &str) -> bool {
    let mut node = value;
    for seg in path {
        let next = match seg {
            Seg::Key(k) => node.get_mut(k.as_str()),
            Seg::Index(i) => node.get_mut(*i),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match node.as_mapping_mut() {
        Some(map) => map.remove(key).is_some(),
        None => false,
    }
}

fn ignored_segments(path: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
    match path {
        serde_ignored::Path::Root => {}
        serde_ignored::Path::Seq { parent, index } => {
            ignored_segments(parent, out);
            out.push(Seg::Index(*index));
        }
        serde_ignored::Path::Map { parent, key } => {
            ignored_segments(parent, out);
            out.push(Seg::Key(key.clone()));
        }
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_segments(parent, out),
    }
}

/// "unknown field `cidr_block`; did you mean `cidr`?" — the nearest known name by edit distance.
fn unknown_field_message(key: &str, known: &[String]) -> String {
    let nearest = known
        .iter()
        .map(|k| (edit_distance(key, k), k.as_str()))
        // A third of the name may be wrong (at least one edit), or one contains the other; never a full rewrite.
        .filter(|(d, k)| {
            (*d <= (k.len() / 3).max(1) && *d < key.len()) || k.contains(key) || key.contains(k)
        })
        .min();
    match nearest {
        Some((_, k)) => format!("unknown field `{key}`; did you mean `{k}`?"),
        None => format!(
            "unknown field `{key}`; expected one of: {}",
            known.join(", ")
        ),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The JSON Schema of a topology file, generated from the same types that parse it.
pub fn schema() -> &'static serde_json::Value {
    static SCHEMA: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
        serde_json::to_value(schemars::schema_for!(super::raw::File)).unwrap_or_default()
    });
    &SCHEMA
}

/// The field names allowed in the mapping at `path`, read from the schema so they never drift from the types.
fn known_keys(path: &[Seg]) -> Vec<String> {
    let root = schema();
    let resolve = |mut node: &'static serde_json::Value| {
        // Follow `$ref`s and pick the object variant of untagged enums (e.g. an endpoint's full form).
        for _ in 0..8 {
            if let Some(name) = node.get("$ref").and_then(|r| r.as_str()) {
                let name = name.rsplit('/').next().unwrap_or_default();
                node = &root["$defs"][name];
            } else if let Some(variants) = node
                .get("anyOf")
                .or_else(|| node.get("oneOf"))
                .and_then(|v| v.as_array())
            {
                let pick = variants.iter().find(|v| {
                    v.get("properties").is_some()
                        || v.get("$ref").is_some()
                        || v.get("items").is_some()
                });
                match pick {
                    Some(v) => node = v,
                    None => break,
                }
            } else {
                break;
            }
        }
        node
    };
    let mut node = resolve(root);
    for seg in path {
        node = match seg {
            Seg::Key(key) => resolve(&node["properties"][key.as_str()]),
            Seg::Index(_) => resolve(&node["items"]),
        };
    }
    node.get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}
