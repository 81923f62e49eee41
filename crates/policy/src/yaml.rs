//! YAML text (JSON too: it is YAML's subset) to a tree of [`Node`]s that
//! keep their byte spans, so that a diagnostic can underline the exact
//! characters, down to positions inside a CEL expression written as a
//! plain, quoted or block scalar.
//!
//! Parsing never fails: it returns the tree it could build and every
//! problem as a [`Diagnostic`]. The parser is saphyr-parser (the
//! maintained successor of yaml-rust2; serde_yaml is unmaintained), driven
//! through its event API, which reports a span per event.

use std::collections::HashMap;

use portcullis_cel::{Diagnostic, Span};
use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::code;

#[cfg(test)]
mod tests;

/// At most this many nodes, aliases expanded: a few anchors must not
/// expand into gigabytes ("billion laughs").
pub const MAX_NODES: usize = 100_000;

/// A node of a YAML document.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The node's bytes in the source, quotes and brackets included.
    pub span: Span,
    /// What the node is.
    pub kind: NodeKind,
}

/// The kinds of node.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A scalar; YAML's types (`true`, `3`, `null`) are read by the caller,
    /// who knows what the field expects.
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(Node, Node)>),
}

/// A scalar's text, as decoded, and how it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    /// The decoded text.
    pub value: String,
    /// How it was written.
    pub style: Style,
}

/// How a scalar was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `abc`
    Plain,
    /// `'abc'`
    SingleQuoted,
    /// `"abc"`
    DoubleQuoted,
    /// `|`
    Literal,
    /// `>`
    Folded,
}

impl Node {
    /// The node as JSON, plain scalars typed as YAML's core schema types
    /// them (`true`, `3`, `1.5`, `null`), quoted and block scalars strings:
    /// how a JSON Schema validator, or Go's decoder, reads the document.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Scalar(s) if s.style == Style::Plain => match s.value.as_str() {
                "true" | "True" | "TRUE" => Value::Bool(true),
                "false" | "False" | "FALSE" => Value::Bool(false),
                "" | "~" | "null" | "Null" | "NULL" => Value::Null,
                v => v
                    .parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| v.parse::<f64>().map(Value::from))
                    .unwrap_or_else(|_| Value::String(v.to_owned())),
            },
            NodeKind::Scalar(s) => Value::String(s.value.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .filter_map(|(k, v)| Some((k.scalar()?.value.clone(), v.to_json())))
                    .collect(),
            ),
        }
    }

    /// The items of a sequence; none for another node.
    pub fn items(&self) -> &[Node] {
        match &self.kind {
            NodeKind::Seq(items) => items,
            _ => &[],
        }
    }

    /// The entries of a map whose keys are scalars, in order; none for
    /// another node.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Node)> {
        let entries: &[(Node, Node)] = match &self.kind {
            NodeKind::Map(entries) => entries,
            _ => &[],
        };
        entries
            .iter()
            .filter_map(|(k, v)| Some((k.scalar()?.value.as_str(), v)))
    }

    /// The value of `key`, if this node is a map that has it (the first,
    /// should the key repeat: that is a diagnostic of its own).
    pub fn get(&self, key: &str) -> Option<&Node> {
        let NodeKind::Map(entries) = &self.kind else {
            return None;
        };
        entries
            .iter()
            .find(|(k, _)| k.scalar().is_some_and(|s| s.value == key))
            .map(|(_, v)| v)
    }

    /// The scalar, if this node is one.
    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// What the node is, in words for messages: "a string", "a list", "a map".
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(s) if s.style == Style::Plain && is_null(&s.value) => "null",
            NodeKind::Scalar(_) => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a map",
        }
    }

    /// The byte offset in `src` of byte `pos` of this scalar's decoded
    /// value, so that a span inside the value (a CEL error) maps onto the
    /// document. Escapes, quotes, folded lines and indentation are
    /// accounted for; a position past the end maps to the scalar's end.
    pub fn source_offset(&self, src: &str, pos: usize) -> usize {
        let Some(scalar) = self.scalar() else {
            return self.span.start as usize;
        };
        let text = src.get(self.span.range()).unwrap_or("");
        let base = self.span.start as usize;
        let (body, body_start) = match scalar.style {
            Style::SingleQuoted | Style::DoubleQuoted => {
                (text.get(1..text.len().saturating_sub(1)).unwrap_or(""), 1)
            }
            _ => (text, 0),
        };
        match align(&scalar.value, body, scalar.style)
            .into_iter()
            .find(|(v, _)| *v >= pos)
        {
            Some((v, s)) if v == pos => base + body_start + s,
            _ => base + body_start + body.len(),
        }
    }

    /// The span in `src` of bytes `range` of this scalar's decoded value.
    pub fn value_span(&self, src: &str, range: Span) -> Span {
        let start = self.source_offset(src, range.start as usize);
        let end = if range.end > range.start {
            self.source_offset(src, range.end as usize - 1) + 1
        } else {
            start
        };
        // A multi-byte character at the end: extend to its boundary.
        let end = (end..=src.len())
            .find(|e| src.is_char_boundary(*e))
            .unwrap_or(src.len());
        Span::new(start, end.max(start))
    }
}

/// Pairs (value byte offset, body byte offset) for each character of the
/// decoded value, found by walking value and source together: equal
/// characters pair up; an escape, a doubled quote or a run of white space
/// and line breaks in the source stands for one value character; anything
/// else in the source (indentation) is skipped.
fn align(value: &str, body: &str, style: Style) -> Vec<(usize, usize)> {
    let src: Vec<(usize, char)> = body.char_indices().collect();
    let mut out = Vec::with_capacity(value.len());
    let mut j = 0;
    for (vi, vc) in value.char_indices() {
        while let Some(&(si, sc)) = src.get(j) {
            if sc == vc {
                out.push((vi, si));
                j += 1;
                // `''` in a single-quoted scalar is one quote.
                if style == Style::SingleQuoted
                    && sc == '\''
                    && src.get(j).is_some_and(|&(_, c)| c == '\'')
                {
                    j += 1;
                }
                break;
            }
            if style == Style::DoubleQuoted && sc == '\\' {
                out.push((vi, si));
                j += escape_len(&src, j);
                break;
            }
            if (vc == ' ' || vc == '\n') && sc.is_whitespace() {
                out.push((vi, si));
                while src
                    .get(j)
                    .is_some_and(|&(_, c)| c == ' ' || c == '\t' || c == '\n' || c == '\r')
                {
                    j += 1;
                }
                break;
            }
            j += 1;
        }
    }
    out
}

/// Characters an escape at `j` takes in a double-quoted scalar.
fn escape_len(src: &[(usize, char)], j: usize) -> usize {
    match src.get(j + 1).map(|&(_, c)| c) {
        Some('x') => 4,
        Some('u') => 6,
        Some('U') => 10,
        Some(_) => 2,
        None => 1,
    }
}

/// YAML's null spellings, for plain scalars.
pub fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// Parses `src`. Returns the first document's root (or `None` when there is
/// none, or it could not be built) and every problem found; a second
/// document is an error.
pub fn parse(src: &str) -> (Option<Node>, Vec<Diagnostic>) {
    let (mut roots, diags) = parse_documents(src, false);
    let root = (!roots.is_empty()).then(|| roots.swap_remove(0));
    (root, diags)
}

/// Parses a stream of documents (`---` between them, as Kubernetes
/// manifests come): every document's root, and every problem found.
pub fn parse_stream(src: &str) -> (Vec<Node>, Vec<Diagnostic>) {
    parse_documents(src, true)
}

fn parse_documents(src: &str, stream: bool) -> (Vec<Node>, Vec<Diagnostic>) {
    let offsets = CharOffsets::new(src);
    let mut builder = Builder {
        src,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        roots: Vec::new(),
        stream,
        nodes: 0,
        documents: 0,
        diags: Vec::new(),
    };
    for item in Parser::new_from_str(src) {
        match item {
            Ok((event, span)) => {
                let span = Span::new(
                    offsets.byte(span.start.index()),
                    offsets.byte(span.end.index()),
                );
                if !builder.event(event, span) {
                    break;
                }
            }
            Err(e) => {
                let at = offsets.byte(e.marker().index());
                let end = (at + 1..=src.len())
                    .find(|i| src.is_char_boundary(*i))
                    .unwrap_or(src.len());
                builder.diags.push(Diagnostic::error(
                    code::YAML,
                    Span::new(at.min(src.len()), end),
                    format!("invalid YAML: {}", e.info()),
                ));
                return (Vec::new(), builder.diags);
            }
        }
    }
    builder.end_document();
    (builder.roots, builder.diags)
}

/// Converts saphyr's character indices to byte offsets.
struct CharOffsets {
    /// Byte offset of each character; `None` when the text is ASCII.
    table: Option<Vec<usize>>,
    len: usize,
}

impl CharOffsets {
    fn new(src: &str) -> CharOffsets {
        let table = (!src.is_ascii()).then(|| src.char_indices().map(|(i, _)| i).collect());
        CharOffsets {
            table,
            len: src.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.len),
            Some(t) => t.get(char_index).copied().unwrap_or(self.len),
        }
    }
}

/// A collection being built: its start and what it holds so far.
enum Open {
    Seq(usize, Span, Vec<Node>),
    Map(usize, Span, Vec<(Node, Node)>, Option<Node>),
}

struct Builder<'s> {
    src: &'s str,
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    /// The finished documents' roots.
    roots: Vec<Node>,
    /// Several documents are allowed.
    stream: bool,
    nodes: usize,
    documents: usize,
    diags: Vec<Diagnostic>,
}

impl Builder<'_> {
    /// Handles one event; `false` stops parsing.
    fn event(&mut self, event: Event<'_>, span: Span) -> bool {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 && !self.stream {
                    self.diags.push(Diagnostic::error(code::YAML, span, "a policy file holds one document").with_help("remove the second `---` and what follows, or move it to its own file"));
                    return false;
                }
            }
            Event::Scalar(value, style, anchor, _) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted => Style::SingleQuoted,
                    ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                    ScalarStyle::Literal => Style::Literal,
                    ScalarStyle::Folded => Style::Folded,
                };
                let node = Node {
                    span,
                    kind: NodeKind::Scalar(Scalar {
                        value: value.into_owned(),
                        style,
                    }),
                };
                return self.push(node, anchor, 1);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Seq(anchor, span, Vec::new())),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Open::Map(anchor, span, Vec::new(), None))
            }
            Event::SequenceEnd => {
                if let Some(Open::Seq(anchor, start, items)) = self.stack.pop() {
                    return self.push(
                        Node {
                            span: start.to(span),
                            kind: NodeKind::Seq(items),
                        },
                        anchor,
                        1,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map(anchor, start, entries, _)) = self.stack.pop() {
                    return self.push(
                        Node {
                            span: start.to(span),
                            kind: NodeKind::Map(entries),
                        },
                        anchor,
                        1,
                    );
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => {
                    let size = count(&node);
                    let at = Node { span, ..node };
                    return self.push(at, 0, size);
                }
                None => self
                    .diags
                    .push(Diagnostic::error(code::YAML, span, "unknown alias")),
            },
            Event::DocumentEnd => self.end_document(),
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        true
    }

    /// Keeps the document's root, if it has one (an empty document between
    /// two `---` has none).
    fn end_document(&mut self) {
        if let Some(root) = self.root.take() {
            self.roots.push(root);
        }
        // Anchors do not cross documents.
        self.anchors.clear();
    }

    /// Adds a finished node of `size` nodes (more than one for an expanded
    /// alias) to its parent, or makes it the root.
    fn push(&mut self, node: Node, anchor: usize, size: usize) -> bool {
        self.nodes += size;
        if self.nodes > MAX_NODES {
            self.diags.push(
                Diagnostic::error(
                    code::YAML,
                    node.span,
                    format!("the document is too large (more than {MAX_NODES} nodes)"),
                )
                .with_help("aliases expand into copies; use fewer"),
            );
            return false;
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq(_, _, items)) => items.push(node),
            Some(Open::Map(_, _, entries, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let Some(k) = key.scalar()
                        && let Some((first, _)) = entries
                            .iter()
                            .find(|(e, _)| e.scalar().is_some_and(|s| s.value == k.value))
                    {
                        let line = line_of(self.src, first.span.start as usize);
                        self.diags.push(
                            Diagnostic::error(
                                code::DUPLICATE_KEY,
                                key.span,
                                format!("duplicate key `{}`", k.value),
                            )
                            .with_label("this key appears twice in the same map")
                            .with_help(format!("the first is on line {line}; remove one")),
                        );
                    }
                    entries.push((key, node));
                }
            },
        }
        true
    }
}

/// The 1-based line of byte `offset`.
pub fn line_of(src: &str, offset: usize) -> usize {
    1 + src
        .get(..offset)
        .unwrap_or(src)
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
}

/// Nodes in a tree, for the size limit.
fn count(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar(_) => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count(k) + count(v))
                .sum::<usize>()
        }
    }
}
