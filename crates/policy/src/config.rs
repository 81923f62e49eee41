//! Action configs checked against their schemas (spec §3): known fields,
//! types, ranges, enums, required fields, aliases, and the phases each
//! action runs in. Strict as ngrok is: an unknown field is an error with a
//! suggestion (ngrok's `ERR_NGROK_2203`).
//!
//! Schemas are data (`config/actions.rs`): each action lists its fields, each field
//! its type; a few cross-field rules are functions. Values that contain
//! `${` in fields that take CEL interpolation are not checked as literals;
//! the interpolation itself is checked elsewhere.

use portcullis_cel::diagnostic::did_you_mean;
use portcullis_cel::{Diagnostic, Span};

use crate::code;
use crate::document::Action;
use crate::schema::Phase;
use crate::yaml::{Node, NodeKind, Scalar, Style, is_null};

mod actions;
mod json_schema;
mod values;

pub use json_schema::{ActionDoc, FieldDoc, SCHEMA_ID, describe_action, json_schema};

#[cfg(test)]
mod tests;

/// Checks `action.config` against the schema of `action.kind`. `src` is the
/// file text (for spans).
pub fn check(action: &Action, phase: Phase, src: &str) -> Vec<Diagnostic> {
    let _ = src;
    let mut cx = Cx { diags: Vec::new() };
    // Unknown types are reported by `document`.
    let Some(spec) = actions::spec(&action.kind) else {
        return cx.diags;
    };
    let kind = action.kind.as_str();
    if !spec.phases.contains(&phase) {
        let allowed = spec
            .phases
            .iter()
            .map(|p| format!("`{}`", p.key()))
            .collect::<Vec<_>>();
        let help = format!("`{kind}` runs in {} (ERR_NGROK_2202)", join_or(&allowed));
        cx.diags.push(
            Diagnostic::error(
                code::ACTION_PHASE,
                action.kind_span,
                format!("`{kind}` is not supported in `{}`", phase.key()),
            )
            .with_help(help),
        );
    }
    let config = action.config.as_ref().filter(|c| !is_null_node(c));
    let fields = match spec.fields {
        Some(fields) if !(kind == "deny" && phase == Phase::TcpConnect) => fields,
        _ => {
            if let Some(config) = config.filter(|c| !is_empty_map(c)) {
                let why = if kind == "deny" {
                    "in `on_tcp_connect`, `deny` closes the connection and takes no config"
                        .to_string()
                } else {
                    format!("`{kind}` takes no config")
                };
                cx.diags.push(
                    Diagnostic::error(code::UNKNOWN_FIELD, config.span, why)
                        .with_help("remove `config` (ERR_NGROK_2203)"),
                );
            }
            return cx.diags;
        }
    };
    let within = format!("the `{kind}` config");
    match config {
        None => {
            let missing: Vec<String> = fields
                .iter()
                .filter(|f| f.required)
                .map(|f| format!("`{}`", f.name))
                .collect();
            if !missing.is_empty() {
                let mut d = Diagnostic::error(
                    code::MISSING,
                    action.kind_span,
                    format!("`{kind}` needs a `config` with {}", join_and(&missing)),
                );
                let help = fields
                    .iter()
                    .find(|f| f.required && !f.help.is_empty())
                    .map_or("", |f| f.help);
                d = d.with_help(if help.is_empty() {
                    "ngrok rejects a missing required field (ERR_NGROK_2234)".to_string()
                } else {
                    help.to_string()
                });
                cx.diags.push(d);
            }
        }
        Some(config) => {
            if cx.object(config, fields, "", &within, action.kind_span)
                && let (Some(extra), NodeKind::Map(entries)) = (spec.extra, &config.kind)
            {
                extra(&mut cx, entries);
            }
        }
    }
    cx.diags
}

/// How a CEL-capable string holds CEL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// Literal text that may interpolate `${expr}` (spec §2.9).
    Template,
    /// The whole string is one CEL expression: rate-limit `bucket_key`
    /// entries, http-request `retry_condition`.
    Bare,
}

/// The string nodes of `action`'s config that hold CEL, found by walking
/// the config along its schema: the fields tagged CEL-capable, `set-vars`
/// values and `log.metadata` (every string in them, however deep). Nulls,
/// unknown fields and nodes of the wrong shape are skipped: [`check`]
/// reports those.
pub fn cel_fields(action: &Action) -> Vec<(&Node, FieldKind)> {
    let mut out = Vec::new();
    let Some(fields) = actions::spec(&action.kind).and_then(|s| s.fields) else {
        return out;
    };
    if let Some(config) = &action.config {
        cel_object(config, fields, &mut out);
    }
    out
}

/// Whether `action` runs in `phase` (an unknown type runs nowhere).
pub fn runs_in(action: &Action, phase: Phase) -> bool {
    actions::spec(&action.kind).is_some_and(|s| s.phases.contains(&phase))
}

fn cel_object<'n>(node: &'n Node, fields: &[Field], out: &mut Vec<(&'n Node, FieldKind)>) {
    let NodeKind::Map(entries) = &node.kind else {
        return;
    };
    for (key, value) in entries {
        let Some(name) = key.scalar().map(|s| s.value.as_str()) else {
            continue;
        };
        if let Some(field) = fields
            .iter()
            .find(|f| f.name == name && !matches!(f.alias, Alias::Removed(_)))
        {
            cel_value(value, &field.ty, out);
        }
    }
}

fn cel_value<'n>(node: &'n Node, ty: &Ty, out: &mut Vec<(&'n Node, FieldKind)>) {
    match (ty, &node.kind) {
        (_, NodeKind::Scalar(_)) if is_null_node(node) => {}
        (Ty::Str(s), NodeKind::Scalar(_)) => match s.cel {
            Cel::No => {}
            Cel::Template => out.push((node, FieldKind::Template)),
            Cel::Bare => out.push((node, FieldKind::Bare)),
        },
        (Ty::Any, NodeKind::Scalar(_)) => out.push((node, FieldKind::Template)),
        (Ty::Any, NodeKind::Seq(items)) => {
            for item in items {
                cel_value(item, ty, out);
            }
        }
        (Ty::Any, NodeKind::Map(entries)) => {
            for (_, value) in entries {
                cel_value(value, ty, out);
            }
        }
        (Ty::List { item, .. }, NodeKind::Seq(items)) => {
            for it in items {
                cel_value(it, item, out);
            }
        }
        (Ty::Map { value, .. }, NodeKind::Map(entries)) => {
            for (_, v) in entries {
                cel_value(v, value, out);
            }
        }
        (Ty::Obj(fields), NodeKind::Map(_)) => cel_object(node, fields, out),
        (Ty::Custom(_, shapes), _) => {
            for shape in *shapes {
                cel_value(node, shape, out);
            }
        }
        _ => {}
    }
}

/// The schema of one action.
pub(crate) struct ActionSpec {
    /// Phases the action runs in.
    pub(crate) phases: &'static [Phase],
    /// Its config fields; `None` when it takes no config.
    pub(crate) fields: Option<&'static [Field]>,
    /// Cross-field rules, run on the config's entries when it is a map.
    pub(crate) extra: Option<Extra>,
}

/// A cross-field rule: a function of the config's entries.
pub(crate) type Extra = fn(&mut Cx, &[(Node, Node)]);

/// A config field.
#[derive(Clone, Copy)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
    pub(crate) required: bool,
    /// Help when the field is missing.
    pub(crate) help: &'static str,
    pub(crate) alias: Alias,
}

impl Field {
    /// An optional field.
    pub(crate) const fn opt(name: &'static str, ty: Ty) -> Field {
        Field {
            name,
            ty,
            required: false,
            help: "",
            alias: Alias::None,
        }
    }

    /// A required field.
    pub(crate) const fn req(name: &'static str, ty: Ty) -> Field {
        Field {
            required: true,
            ..Field::opt(name, ty)
        }
    }

    /// A legacy name of `now`, accepted with a warning.
    pub(crate) const fn deprecated(name: &'static str, now: &'static str, ty: Ty) -> Field {
        Field {
            alias: Alias::Deprecated(now),
            ..Field::opt(name, ty)
        }
    }

    /// A field ngrok removed and now rejects.
    pub(crate) const fn removed(name: &'static str, help: &'static str) -> Field {
        Field {
            alias: Alias::Removed(help),
            ..Field::opt(name, Ty::Any)
        }
    }
}

/// Whether a field is a current name, a legacy alias, or a removed name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alias {
    None,
    /// The current name.
    Deprecated(&'static str),
    /// Help for the replacement.
    Removed(&'static str),
}

/// The type of a config value.
#[derive(Clone, Copy)]
pub(crate) enum Ty {
    Str(Str),
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Float {
        min: f64,
        max: f64,
    },
    Duration(Dur),
    Enum {
        values: &'static [&'static str],
        /// Values ngrok documents that Portcullis does not support yet.
        unsupported: &'static [&'static str],
    },
    List {
        item: &'static Ty,
        min: usize,
        max: usize,
        unique: Unique,
    },
    /// A map from string keys.
    Map {
        value: &'static Ty,
        min: usize,
        max: usize,
    },
    Obj(&'static [Field]),
    /// Anything: a string, a number, a list, a map. Its strings, however
    /// deep, may interpolate `${}` (`log.metadata`, `set-vars` values).
    Any,
    /// Checked by a function of (context, node, path). The types after it
    /// say where the node holds CEL, for [`cel_fields`]: each alternative
    /// is tried against the node and applies where its shape matches (a
    /// string type to a scalar, a list type to a list, a map or object
    /// type to a map).
    Custom(fn(&mut Cx, &Node, &str), &'static [Ty]),
}

/// A string type.
#[derive(Clone, Copy)]
pub(crate) struct Str {
    pub(crate) cel: Cel,
    pub(crate) format: Format,
    pub(crate) nonempty: bool,
    pub(crate) max_len: usize,
}

impl Str {
    /// Any string, no interpolation.
    pub(crate) const PLAIN: Str = Str {
        cel: Cel::No,
        format: Format::Any,
        nonempty: false,
        max_len: usize::MAX,
    };

    /// Any string, `${}` interpolation allowed.
    pub(crate) const TEMPLATE: Str = Str {
        cel: Cel::Template,
        ..Str::PLAIN
    };

    pub(crate) const fn nonempty(self) -> Str {
        Str {
            nonempty: true,
            ..self
        }
    }

    pub(crate) const fn max_len(self, max_len: usize) -> Str {
        Str { max_len, ..self }
    }

    pub(crate) const fn format(self, format: Format) -> Str {
        Str { format, ..self }
    }
}

/// Whether a string holds CEL.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cel {
    /// A literal.
    No,
    /// May contain `${...}`.
    Template,
    /// Is a CEL expression (rate-limit `bucket_key`).
    Bare,
}

/// A literal string format.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Any,
    /// An RE2 regular expression.
    Regex,
    /// An absolute URL.
    Url,
    /// A URL the proxy sends tokens or secrets to, and builds others on:
    /// `https://host[:port][/path]`, `http://` on loopback only, no user
    /// information, query or fragment.
    BaseUrl,
    /// A CIDR.
    Cidr,
}

/// A Go duration with limits, in nanoseconds.
#[derive(Clone, Copy)]
pub(crate) struct Dur {
    pub(crate) min: i128,
    pub(crate) max: Option<i128>,
    /// Must be a multiple of this, when not 0.
    pub(crate) multiple: i128,
}

/// Whether list items must be distinct.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unique {
    No,
    Exact,
    IgnoreCase,
}

/// The checking context: the diagnostics so far.
pub(crate) struct Cx {
    pub(crate) diags: Vec<Diagnostic>,
}

impl Cx {
    pub(crate) fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn wrong_type(&mut self, node: &Node, path: &str, expected: &str, help: Option<String>) {
        let found = match &node.kind {
            NodeKind::Scalar(s) if s.style != Style::Plain => "a quoted string",
            NodeKind::Scalar(s) if s.style == Style::Plain && !is_null(&s.value) => "a scalar",
            _ => node.describe(),
        };
        let found = if found == "a scalar" {
            "a string"
        } else {
            found
        };
        let mut d = Diagnostic::error(
            code::WRONG_TYPE,
            node.span,
            format!("`{path}` must be {expected}, not {found}"),
        );
        d = d.with_help(
            help.unwrap_or_else(|| "ngrok cannot decode the config (ERR_NGROK_2203)".to_string()),
        );
        self.diags.push(d);
    }

    /// Checks a map against `fields`. `anchor` is where a missing field is
    /// reported. Returns whether the node was a map.
    pub(crate) fn object(
        &mut self,
        node: &Node,
        fields: &'static [Field],
        path: &str,
        within: &str,
        anchor: Span,
    ) -> bool {
        let NodeKind::Map(entries) = &node.kind else {
            let what = if path.is_empty() {
                "`config`".to_string()
            } else {
                format!("`{path}`")
            };
            let help = match node.scalar() {
                Some(_) => "write the fields as a map, as in `{field: value}`".to_string(),
                None => "ngrok cannot decode the config (ERR_NGROK_2203)".to_string(),
            };
            self.diags.push(
                Diagnostic::error(
                    code::WRONG_TYPE,
                    node.span,
                    format!(
                        "{what} must be a map, not {}",
                        if node.scalar().is_some() && node.describe() != "null" {
                            "a string"
                        } else {
                            node.describe()
                        }
                    ),
                )
                .with_help(help),
            );
            return false;
        };
        let known: Vec<&str> = fields
            .iter()
            .filter(|f| f.alias == Alias::None)
            .map(|f| f.name)
            .collect();
        let mut present: Vec<&str> = Vec::new();
        for (key, value) in entries {
            let Some(name) = key.scalar().map(|s| s.value.as_str()) else {
                self.wrong_type(key, "a field name", "a string", None);
                continue;
            };
            let Some(field) = fields.iter().find(|f| f.name == name) else {
                self.unknown_field(key, name, within, &known);
                continue;
            };
            let sub = join_path(path, name);
            match field.alias {
                Alias::Removed(help) => {
                    self.diags.push(
                        Diagnostic::error(
                            code::UNKNOWN_FIELD,
                            key.span,
                            format!("`{name}` is no longer a field of {within}"),
                        )
                        .with_help(format!("{help} (ngrok rejects `{name}`: ERR_NGROK_2203)")),
                    );
                    continue;
                }
                Alias::Deprecated(now) => {
                    self.diags.push(
                        Diagnostic::warning(
                            code::lint::DEPRECATED,
                            key.span,
                            format!("`{name}` is a legacy name of `{now}`"),
                        )
                        .with_help(format!("rename it `{now}`")),
                    );
                    if entries
                        .iter()
                        .any(|(k, _)| k.scalar().is_some_and(|s| s.value == now))
                    {
                        self.diags.push(
                            Diagnostic::error(
                                code::CONFLICT,
                                key.span,
                                format!("`{name}` and `{now}` are the same field, set twice"),
                            )
                            .with_help(format!("keep only `{now}`")),
                        );
                    }
                    if !is_null_node(value) {
                        present.push(now);
                    }
                }
                Alias::None => {}
            }
            if is_null_node(value) {
                continue;
            }
            present.push(name);
            self.value(value, &field.ty, &sub, key.span);
        }
        for field in fields
            .iter()
            .filter(|f| f.required && !present.contains(&f.name))
        {
            let help = if field.help.is_empty() {
                "ngrok rejects a missing required field (ERR_NGROK_2234)".to_string()
            } else {
                field.help.to_string()
            };
            self.diags.push(
                Diagnostic::error(
                    code::MISSING,
                    anchor,
                    format!(
                        "missing required field `{}` in {within}",
                        join_path(path, field.name)
                    ),
                )
                .with_help(help),
            );
        }
        true
    }

    fn unknown_field(&mut self, key: &Node, name: &str, within: &str, known: &[&str]) {
        let suggestion = did_you_mean(name, known.iter().copied());
        let mut d = Diagnostic::error(
            code::UNKNOWN_FIELD,
            key.span,
            format!("unknown field `{name}` in {within}"),
        )
        .with_label(format!(
            "fields are {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_suggestion(suggestion);
        if d.help.is_none() {
            d = d.with_help("ngrok rejects unknown fields (ERR_NGROK_2203)");
        }
        self.diags.push(d);
    }

    /// Checks a value of type `ty`. `key` is the span of the key holding it.
    pub(crate) fn value(&mut self, node: &Node, ty: &Ty, path: &str, key: Span) {
        match ty {
            Ty::Any => {}
            Ty::Custom(f, _) => f(self, node, path),
            Ty::Str(s) => self.string(node, s, path),
            Ty::Bool => self.boolean(node, path),
            Ty::Int { min, max } => self.int(node, path, *min, *max),
            Ty::Float { min, max } => self.float(node, path, *min, *max),
            Ty::Duration(d) => self.duration(node, path, d),
            Ty::Enum {
                values,
                unsupported,
            } => self.enumeration(node, path, values, unsupported),
            Ty::List {
                item,
                min,
                max,
                unique,
            } => self.list(node, path, item, *min, *max, *unique),
            Ty::Map { value, min, max } => self.map(node, path, value, *min, *max),
            Ty::Obj(fields) => {
                let within = format!("`{path}`");
                self.object(node, fields, path, &within, key);
            }
        }
    }

    /// The scalar of a node that must be one, or `None` after reporting.
    fn scalar<'n>(&mut self, node: &'n Node, path: &str, expected: &str) -> Option<&'n Scalar> {
        match node.scalar() {
            Some(s) => Some(s),
            None => {
                self.wrong_type(node, path, expected, None);
                None
            }
        }
    }

    pub(crate) fn string(&mut self, node: &Node, ty: &Str, path: &str) {
        let Some(s) = self.scalar(node, path, "a string") else {
            return;
        };
        let value = if s.style == Style::Plain && is_null(&s.value) {
            ""
        } else {
            s.value.as_str()
        };
        if ty.nonempty && value.trim().is_empty() {
            self.diags.push(
                Diagnostic::error(code::EMPTY, node.span, format!("`{path}` cannot be empty"))
                    .with_help("ngrok rejects an empty value here (ERR_NGROK_2223)"),
            );
            return;
        }
        if value.chars().count() > ty.max_len {
            self.diags.push(
                Diagnostic::error(
                    code::TOO_LONG,
                    node.span,
                    format!(
                        "`{path}` is too long: {} characters, at most {}",
                        value.chars().count(),
                        ty.max_len
                    ),
                )
                .with_help("ngrok limits its length (ERR_NGROK_2221)"),
            );
        }
        let interpolated = value.contains("${");
        if interpolated && ty.cel != Cel::No {
            return;
        }
        let no_cel =
            || interpolated.then(|| format!("`{path}` does not take `${{}}` interpolation"));
        match ty.format {
            Format::Any => {}
            Format::Regex => {
                if let Err(e) = regex::Regex::new(value) {
                    let reason = regex_reason(&e);
                    self.diags.push(
                        Diagnostic::error(
                            code::BAD_REGEX,
                            node.span,
                            format!("`{path}` is not a valid regular expression"),
                        )
                        .with_label(reason)
                        .with_help("write an RE2 regular expression (ERR_NGROK_2261)"),
                    );
                }
            }
            Format::Url => {
                if let Err(why) = values::check_url(value) {
                    self.diags.push(
                        Diagnostic::error(
                            code::BAD_URL,
                            node.span,
                            format!("`{path}` must be a URL, was `{value}`"),
                        )
                        .with_label(why)
                        .with_help(
                            no_cel().unwrap_or_else(|| "ngrok rejects it (ERR_NGROK_2226)".into()),
                        ),
                    );
                }
            }
            Format::BaseUrl => {
                if let Err(why) = values::check_base_url(value) {
                    self.diags.push(
                        Diagnostic::error(
                            code::BAD_URL,
                            node.span,
                            format!("`{path}` must be an https URL, was `{value}`"),
                        )
                        .with_label(why)
                        .with_help(no_cel().unwrap_or_else(|| {
                            "tokens and secrets go there: write `https://host[/path]` \
                             (`http://` only on loopback: 127.0.0.0/8, [::1], localhost)"
                                .into()
                        })),
                    );
                }
            }
            Format::Cidr => {
                if let Err(why) = values::check_cidr(value) {
                    self.diags.push(
                        Diagnostic::error(
                            code::BAD_CIDR,
                            node.span,
                            format!("`{value}` is not a CIDR"),
                        )
                        .with_label(format!("in `{path}`"))
                        .with_help(format!("{why} (ERR_NGROK_2217)")),
                    );
                }
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str) {
        let Some(s) = self.scalar(node, path, "`true` or `false`") else {
            return;
        };
        let is_bool = matches!(
            s.value.as_str(),
            "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
        );
        if s.style == Style::Plain && is_bool {
            return;
        }
        if is_bool {
            self.wrong_type(
                node,
                path,
                "a boolean",
                Some(format!("write it without quotes: `{}`", s.value)),
            );
        } else {
            self.diags.push(
                Diagnostic::error(
                    code::INVALID_VALUE,
                    node.span,
                    format!("`{path}` must be `true` or `false`, was `{}`", s.value),
                )
                .with_help(interp_help(
                    s,
                    path,
                    "ngrok rejects it (ERR_NGROK_2204)",
                )),
            );
        }
    }

    /// The number in a scalar, or `None` after reporting.
    fn number<T: std::str::FromStr>(&mut self, node: &Node, path: &str, what: &str) -> Option<T> {
        let s = self.scalar(node, path, what)?;
        let text = s.value.trim();
        let parsed = text.strip_prefix('+').unwrap_or(text).parse::<T>().ok();
        match (s.style, parsed) {
            (Style::Plain, Some(v)) => Some(v),
            (_, Some(_)) => {
                self.wrong_type(
                    node,
                    path,
                    what,
                    Some(format!("write it without quotes: `{text}`")),
                );
                None
            }
            (_, None) => {
                self.diags.push(
                    Diagnostic::error(
                        code::INVALID_VALUE,
                        node.span,
                        format!("`{path}` must be {what}, was `{}`", s.value),
                    )
                    .with_help(interp_help(
                        s,
                        path,
                        "ngrok rejects it (ERR_NGROK_2204)",
                    )),
                );
                None
            }
        }
    }

    fn out_of_range(&mut self, node: &Node, path: &str, min: &str, max: &str, was: &str) {
        self.diags.push(
            Diagnostic::error(
                code::OUT_OF_RANGE,
                node.span,
                format!("`{path}` must be between {min} and {max} inclusive, was {was}"),
            )
            .with_help("ngrok rejects values out of range (ERR_NGROK_2215)"),
        );
    }

    pub(crate) fn int(&mut self, node: &Node, path: &str, min: i64, max: i64) {
        if let Some(v) = self.number::<i64>(node, path, "an integer")
            && !(min..=max).contains(&v)
        {
            self.out_of_range(
                node,
                path,
                &min.to_string(),
                &max.to_string(),
                &v.to_string(),
            );
        }
    }

    fn float(&mut self, node: &Node, path: &str, min: f64, max: f64) {
        if let Some(v) = self.number::<f64>(node, path, "a number")
            && !(min..=max).contains(&v)
        {
            self.out_of_range(
                node,
                path,
                &min.to_string(),
                &max.to_string(),
                &v.to_string(),
            );
        }
    }

    fn duration(&mut self, node: &Node, path: &str, d: &Dur) {
        let Some(s) = self.scalar(node, path, "a duration") else {
            return;
        };
        let ns = match values::parse_duration(s.value.trim()) {
            Ok(ns) => ns,
            Err(why) => {
                let help = if s.value.trim().bytes().all(|b| b.is_ascii_digit()) {
                    format!("add a unit, as in `{}s` (ERR_NGROK_2225)", s.value.trim())
                } else {
                    "write a Go duration, as in `90s`, `15m` or `1h30m` (ERR_NGROK_2225)"
                        .to_string()
                };
                self.diags.push(
                    Diagnostic::error(
                        code::BAD_DURATION,
                        node.span,
                        format!("`{path}` is not a valid duration"),
                    )
                    .with_label(why)
                    .with_help(interp_help(s, path, &help)),
                );
                return;
            }
        };
        let too_big = d.max.is_some_and(|max| ns > max);
        if ns < d.min || too_big {
            let max = d
                .max
                .map_or_else(|| "any".to_string(), values::format_duration);
            let msg = match d.max {
                Some(_) => format!(
                    "`{path}` must be between {} and {max} inclusive, was {}",
                    values::format_duration(d.min),
                    s.value
                ),
                None => format!(
                    "`{path}` must be at least {}, was {}",
                    values::format_duration(d.min),
                    s.value
                ),
            };
            self.diags.push(
                Diagnostic::error(code::OUT_OF_RANGE, node.span, msg)
                    .with_help("ngrok rejects durations out of range (ERR_NGROK_2225)"),
            );
            return;
        }
        if d.multiple != 0 && ns % d.multiple != 0 {
            self.diags.push(
                Diagnostic::error(
                    code::INVALID_VALUE,
                    node.span,
                    format!(
                        "`{path}` must be a multiple of {}, was {}",
                        values::format_duration(d.multiple),
                        s.value
                    ),
                )
                .with_help("ngrok rejects it (ERR_NGROK_2225)"),
            );
        }
    }

    fn enumeration(&mut self, node: &Node, path: &str, values: &[&str], unsupported: &[&str]) {
        let Some(s) = self.scalar(node, path, "a string") else {
            return;
        };
        let value = s.value.as_str();
        if values.contains(&value) {
            return;
        }
        if unsupported.contains(&value) {
            self.diags.push(
                Diagnostic::error(
                    code::UNSUPPORTED,
                    node.span,
                    format!("`{path}: {value}` is not supported by Portcullis yet"),
                )
                .with_help(format!(
                    "Portcullis supports {}",
                    join_or(&values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>())
                )),
            );
            return;
        }
        let suggestion = did_you_mean(value, values.iter().copied());
        let mut d = Diagnostic::error(
            code::INVALID_VALUE,
            node.span,
            format!(
                "`{path}` must be {}, was `{value}`",
                join_or(&values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>())
            ),
        )
        .with_suggestion(suggestion);
        if d.help.is_none() {
            d = d.with_help(interp_help(s, path, "ngrok rejects it (ERR_NGROK_2222)"));
        }
        self.diags.push(d);
    }

    fn list(&mut self, node: &Node, path: &str, item: &Ty, min: usize, max: usize, unique: Unique) {
        let NodeKind::Seq(items) = &node.kind else {
            let help = node
                .scalar()
                .map(|s| format!("write a list: `[{}]`", s.value));
            self.wrong_type(node, path, "a list", help);
            return;
        };
        self.count(node, path, items.len(), min, max);
        for (i, it) in items.iter().enumerate() {
            let sub = format!("{path}[{i}]");
            self.value(it, item, &sub, it.span);
        }
        if unique != Unique::No {
            let mut seen: Vec<String> = Vec::new();
            for it in items {
                let Some(s) = it.scalar() else { continue };
                let v = if unique == Unique::IgnoreCase {
                    s.value.to_ascii_lowercase()
                } else {
                    s.value.clone()
                };
                if seen.contains(&v) {
                    self.duplicate(it.span, &s.value, path);
                } else {
                    seen.push(v);
                }
            }
        }
    }

    pub(crate) fn duplicate(&mut self, span: Span, value: &str, path: &str) {
        self.diags.push(
            Diagnostic::error(
                code::DUPLICATE_VALUE,
                span,
                format!("`{path}` contains `{value}` twice"),
            )
            .with_help("remove the duplicate (ERR_NGROK_2231)"),
        );
    }

    fn count(&mut self, node: &Node, path: &str, len: usize, min: usize, max: usize) {
        if len < min {
            if len == 0 {
                self.diags.push(
                    Diagnostic::error(code::EMPTY, node.span, format!("`{path}` cannot be empty"))
                        .with_help("ngrok rejects an empty value here (ERR_NGROK_2223)"),
                );
            } else {
                self.diags.push(
                    Diagnostic::error(
                        code::COUNT,
                        node.span,
                        format!("`{path}` needs at least {min} entries, has {len}"),
                    )
                    .with_help("ngrok rejects it (ERR_NGROK_2237)"),
                );
            }
        } else if len > max {
            self.diags.push(
                Diagnostic::error(
                    code::COUNT,
                    node.span,
                    format!("too many entries for `{path}`: {len}, at most {max}"),
                )
                .with_help("ngrok rejects it (ERR_NGROK_2218)"),
            );
        }
    }

    fn map(&mut self, node: &Node, path: &str, value: &Ty, min: usize, max: usize) {
        let NodeKind::Map(entries) = &node.kind else {
            self.wrong_type(node, path, "a map", None);
            return;
        };
        self.count(node, path, entries.len(), min, max);
        for (k, v) in entries {
            let Some(name) = k.scalar().map(|s| s.value.as_str()) else {
                self.wrong_type(k, path, "a map with string keys", None);
                continue;
            };
            if name.trim().is_empty() {
                self.diags.push(
                    Diagnostic::error(code::EMPTY, k.span, format!("a key of `{path}` is empty"))
                        .with_help("ngrok rejects an empty key (ERR_NGROK_2223)"),
                );
            }
            let sub = format!("{path}.{name}");
            self.value(v, value, &sub, k.span);
        }
    }
}

/// The first line of a regex error that says what is wrong.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.lines().next().unwrap_or("invalid"))
        .to_string()
}

/// `help`, or a note that the field does not interpolate when the value
/// contains `${`.
fn interp_help(s: &Scalar, path: &str, help: &str) -> String {
    if s.value.contains("${") {
        format!("`{path}` does not take `${{}}` interpolation")
    } else {
        help.to_string()
    }
}

fn join_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn join_with(items: &[String], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

pub(crate) fn join_or(items: &[String]) -> String {
    join_with(items, "or")
}

fn join_and(items: &[String]) -> String {
    join_with(items, "and")
}

/// Whether a node is a plain null scalar.
pub(crate) fn is_null_node(node: &Node) -> bool {
    node.scalar()
        .is_some_and(|s| s.style == Style::Plain && is_null(&s.value))
}

fn is_empty_map(node: &Node) -> bool {
    matches!(&node.kind, NodeKind::Map(e) if e.is_empty())
}

/// The value of field `name` in `entries`, with its key, unless null.
pub(crate) fn get<'n>(entries: &'n [(Node, Node)], name: &str) -> Option<(&'n Node, &'n Node)> {
    entries
        .iter()
        .find(|(k, v)| k.scalar().is_some_and(|s| s.value == name) && !is_null_node(v))
        .map(|(k, v)| (k, v))
}
