//! Stream's query syntax: parsing and evaluating MongoDB-style filter objects, per-endpoint
//! field/operator policies, and parsing/applying sort lists. Every query endpoint uses these rules.

use crate::domain::limits::{MAX_FILTER_CONDITIONS, MAX_FILTER_DEPTH, MAX_FILTER_VALUES};
use std::cmp::Ordering;
use std::fmt;

use crate::domain::clock::parse_time;
use serde_json::{Map, Number, Value};

/// A parsed filter. `All` is the empty filter `{}` (or `null`), which matches every document.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Nor(Vec<Filter>),
    Field { field: String, op: Op, value: Value },
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
    Exists,
    Autocomplete,
    Contains,
    Q,
}

impl Op {
    pub const ALL: [Op; 12] = [
        Op::Eq,
        Op::Ne,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::In,
        Op::Nin,
        Op::Exists,
        Op::Autocomplete,
        Op::Contains,
        Op::Q,
    ];
    /// The set Stream allows on most plain fields (and on custom fields in search).
    pub const COMPARISON: [Op; 6] = [Op::Eq, Op::Gt, Op::Gte, Op::Lt, Op::Lte, Op::In];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "$eq",
            Op::Ne => "$ne",
            Op::Gt => "$gt",
            Op::Gte => "$gte",
            Op::Lt => "$lt",
            Op::Lte => "$lte",
            Op::In => "$in",
            Op::Nin => "$nin",
            Op::Exists => "$exists",
            Op::Autocomplete => "$autocomplete",
            Op::Contains => "$contains",
            Op::Q => "$q",
        }
    }

    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("{what} must be a JSON object, got {got}")]
    NotAnObject {
        what: &'static str,
        got: &'static str,
    },
    #[error("invalid operator {op} for field {field}")]
    UnknownOperator { op: String, field: String },
    #[error("operator {op} is not allowed for field {field} (allowed: {allowed})")]
    OperatorNotAllowed {
        op: Op,
        field: String,
        allowed: String,
    },
    #[error("field {field} is not supported in this filter (supported fields: {supported})")]
    FieldNotAllowed { field: String, supported: String },
    #[error("invalid value for {op} on field {field}: expected {expected}")]
    InvalidValue {
        op: Op,
        field: String,
        expected: &'static str,
    },
    #[error("invalid logical operator {op}: expected $and, $or or $nor")]
    UnknownLogical { op: String },
    #[error("{op} expects a non-empty array of filter objects")]
    InvalidLogical { op: &'static str },
    #[error("logical operator {op} is not supported in this filter")]
    LogicalNotAllowed { op: &'static str },
    #[error("filter field names must not be empty")]
    EmptyField,
    #[error("the condition for field {field} is an empty object; use an operator such as {{\"$eq\": value}}")]
    EmptyCondition { field: String },
    #[error("the condition for field {field} mixes operators with the plain key {key}; use operators only")]
    MixedCondition { field: String, key: String },
    #[error("invalid sort: {0}")]
    InvalidSort(String),
    #[error("the filter is too large: {0}")]
    TooLarge(String),
}

/// What values a declared field accepts, checked at parse time so bad input fails with a clear
/// error instead of silently matching nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Any,
    String,
    Number,
    Bool,
    /// A string that parses as a timestamp (RFC 3339, or a date / zone-less date-time taken as UTC).
    Timestamp,
}

impl ValueKind {
    fn accepts(self, v: &Value) -> bool {
        match self {
            ValueKind::Any => true,
            ValueKind::String => v.is_string(),
            ValueKind::Number => v.is_number(),
            ValueKind::Bool => v.is_boolean(),
            ValueKind::Timestamp => v.as_str().is_some_and(|s| parse_time(s).is_some()),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ValueKind::Any => "any value",
            ValueKind::String => "a string",
            ValueKind::Number => "a number",
            ValueKind::Bool => "a boolean",
            ValueKind::Timestamp => "an RFC 3339 timestamp string",
        }
    }
}

#[derive(Clone, Debug)]
struct FieldRule {
    name: String,
    ops: Vec<Op>,
    kind: ValueKind,
}

/// Per-endpoint policy: which fields may be filtered with which operators.
#[derive(Clone, Debug, Default)]
pub struct FieldRules {
    fields: Vec<FieldRule>,
    custom: Option<Vec<Op>>,
    no_logical: bool,
}

impl FieldRules {
    /// No fields allowed yet, no custom fields, logical operators allowed.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn field(self, name: &str, ops: &[Op]) -> Self {
        self.typed(name, ValueKind::Any, ops)
    }

    pub fn typed(mut self, name: &str, kind: ValueKind, ops: &[Op]) -> Self {
        self.fields.retain(|r| r.name != name);
        self.fields.push(FieldRule {
            name: name.to_string(),
            ops: ops.to_vec(),
            kind,
        });
        self
    }

    /// Fields not declared (custom data) are accepted with these operators.
    pub fn custom_fields(mut self, ops: &[Op]) -> Self {
        self.custom = Some(ops.to_vec());
        self
    }

    pub fn without_logical(mut self) -> Self {
        self.no_logical = true;
        self
    }

    /// The operators and value kind allowed for `field`, or None when the field is not allowed.
    pub fn rule(&self, field: &str) -> Option<(&[Op], ValueKind)> {
        match self.fields.iter().find(|r| r.name == field) {
            Some(r) => Some((&r.ops, r.kind)),
            None => self.custom.as_deref().map(|ops| (ops, ValueKind::Any)),
        }
    }

    fn supported(&self) -> String {
        let mut names: Vec<&str> = self.fields.iter().map(|r| r.name.as_str()).collect();
        if self.custom.is_some() {
            names.push("custom fields");
        }
        names.join(", ")
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Filter {
    /// Parse Stream's filter JSON. `allowed`: per-field operator policy, `None` = any field, any operator.
    pub fn parse(value: &Value, allowed: Option<&FieldRules>) -> Result<Filter, FilterError> {
        check_size(value, 0, &mut 0)?;
        match value {
            // SDKs send `filter: null` when the caller gave none.
            Value::Null => Ok(Filter::All),
            Value::Object(map) => parse_object(map, allowed),
            other => Err(FilterError::NotAnObject {
                what: "filter",
                got: kind_name(other),
            }),
        }
    }

    pub fn field(field: impl Into<String>, op: Op, value: Value) -> Filter {
        Filter::Field {
            field: field.into(),
            op,
            value,
        }
    }

    /// Conjunction that keeps the tree flat (`All` is the identity); lets endpoints add scoping.
    pub fn and(self, other: Filter) -> Filter {
        match (self, other) {
            (Filter::All, f) | (f, Filter::All) => f,
            (Filter::And(mut a), Filter::And(b)) => {
                a.extend(b);
                Filter::And(a)
            }
            (Filter::And(mut a), f) => {
                a.push(f);
                Filter::And(a)
            }
            (f, Filter::And(mut b)) => {
                b.insert(0, f);
                Filter::And(b)
            }
            (a, b) => Filter::And(vec![a, b]),
        }
    }

    /// Evaluate against a document; `resolve` maps a filter field name to the document's value
    /// (None when absent; `null` counts as absent).
    pub fn matches(&self, resolve: &dyn Fn(&str) -> Option<Value>) -> bool {
        match self {
            Filter::All => true,
            Filter::And(fs) => fs.iter().all(|f| f.matches(resolve)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(resolve)),
            Filter::Nor(fs) => !fs.iter().any(|f| f.matches(resolve)),
            Filter::Field { field, op, value } => {
                let actual = resolve(field).filter(|v| !v.is_null());
                eval_op(*op, actual.as_ref(), value)
            }
        }
    }

    /// Resolve dotted paths inside one JSON object (see [`resolve_path`]).
    pub fn matches_json(&self, doc: &Value) -> bool {
        self.matches(&|path| resolve_path(doc, path))
    }

    /// Candidate values of `field` implied by `$eq`/`$in` at the top level of the filter, for key
    /// lookups. Any document that matches the filter has (one of) these values in `field`, so
    /// callers still run `matches` on what they load. None when the filter does not pin the field.
    pub fn key_values(&self, field: &str) -> Option<Vec<Value>> {
        match self {
            Filter::Field {
                field: f,
                op,
                value,
            } if f == field => {
                let values = match (op, value) {
                    (Op::Eq, Value::Array(items)) | (Op::In, Value::Array(items)) => items.clone(),
                    (Op::Eq, v) => vec![v.clone()],
                    _ => return None,
                };
                // A null would mean "absent", which no key lookup can find.
                if values.iter().any(Value::is_null) {
                    return None;
                }
                Some(dedup(values))
            }
            // Every conjunct constrains the document, so the smallest candidate set is enough.
            Filter::And(fs) => fs
                .iter()
                .filter_map(|f| f.key_values(field))
                .min_by_key(Vec::len),
            Filter::Or(fs) if !fs.is_empty() => {
                let mut all = Vec::new();
                for f in fs {
                    all.extend(f.key_values(field)?);
                }
                Some(dedup(all))
            }
            _ => None,
        }
    }
}

/// The key under which values `$eq` finds equal are alike (for indexes): strings (timestamps by
/// their instant), numbers (by value), booleans; `None` for anything else.
pub fn equality_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(match parse_time(s) {
            Some(t) => format!("t:{}", t.timestamp_micros()),
            None => format!("s:{s}"),
        }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(format!("n:{i}"))
            } else if let Some(u) = n.as_u64() {
                Some(format!("n:{u}"))
            } else {
                let f = n.as_f64()?;
                if f.fract() == 0.0 && f.abs() < 9.0e18 {
                    Some(format!("n:{}", f as i64))
                } else {
                    Some(format!("n:{f}"))
                }
            }
        }
        Value::Bool(b) => Some(format!("b:{b}")),
        _ => None,
    }
}

impl Filter {
    /// Every field the filter mentions, in order of first appearance (e.g. query channels only
    /// includes hidden channels when the filter mentions `hidden`).
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit(&mut |f, _, _| {
            if !out.contains(&f) {
                out.push(f);
            }
        });
        out
    }

    pub fn mentions(&self, field: &str) -> bool {
        self.fields().contains(&field)
    }

    pub fn has_op(&self, op: Op) -> bool {
        let mut found = false;
        self.visit(&mut |_, o, _| found |= o == op);
        found
    }

    /// Visit every field condition.
    pub fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a str, Op, &'a Value)) {
        match self {
            Filter::All => {}
            Filter::And(fs) | Filter::Or(fs) | Filter::Nor(fs) => {
                fs.iter().for_each(|x| x.visit(f))
            }
            Filter::Field { field, op, value } => f(field, *op, value),
        }
    }
}

fn dedup(values: Vec<Value>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::with_capacity(values.len());
    values
        .into_iter()
        .filter(|v| seen.insert(v.to_string()))
        .collect()
}

/// Bounds a filter before it is parsed, so its cost stays linear and small whoever sends it:
/// at most `MAX_FILTER_VALUES` values in one list, `MAX_FILTER_DEPTH` nested logical
/// operators and `MAX_FILTER_CONDITIONS` field conditions in all.
fn check_size(value: &Value, depth: usize, conditions: &mut usize) -> Result<(), FilterError> {
    let Value::Object(map) = value else {
        return Ok(());
    };
    for (key, v) in map {
        if key.starts_with('$') {
            if depth + 1 > MAX_FILTER_DEPTH {
                return Err(FilterError::TooLarge(format!(
                    "logical operators may be nested at most {MAX_FILTER_DEPTH} deep"
                )));
            }
            if let Value::Array(items) = v {
                if items.len() > MAX_FILTER_CONDITIONS {
                    return Err(FilterError::TooLarge(format!(
                        "{key} takes at most {MAX_FILTER_CONDITIONS} clauses"
                    )));
                }
                for item in items {
                    check_size(item, depth + 1, conditions)?;
                }
            }
            continue;
        }
        *conditions += 1;
        if *conditions > MAX_FILTER_CONDITIONS {
            return Err(FilterError::TooLarge(format!(
                "at most {MAX_FILTER_CONDITIONS} field conditions per filter"
            )));
        }
        let lists: Vec<&Value> = match v {
            Value::Object(ops) => ops.values().collect(),
            other => vec![other],
        };
        for list in lists {
            if let Value::Array(items) = list {
                if items.len() > MAX_FILTER_VALUES {
                    return Err(FilterError::TooLarge(format!(
                        "the condition on {key} lists {} values; at most {MAX_FILTER_VALUES}",
                        items.len()
                    )));
                }
            }
        }
    }
    Ok(())
}

fn parse_object(
    map: &Map<String, Value>,
    rules: Option<&FieldRules>,
) -> Result<Filter, FilterError> {
    let mut parts = Vec::with_capacity(map.len());
    for (key, value) in map {
        if key.starts_with('$') {
            parts.push(parse_logical(key, value, rules)?);
        } else {
            parts.extend(parse_field(key, value, rules)?);
        }
    }
    Ok(match parts.len() {
        0 => Filter::All,
        1 => parts.pop().expect("one part"),
        _ => Filter::And(parts),
    })
}

fn parse_logical(
    key: &str,
    value: &Value,
    rules: Option<&FieldRules>,
) -> Result<Filter, FilterError> {
    let op = match key {
        "$and" => "$and",
        "$or" => "$or",
        "$nor" => "$nor",
        _ => {
            return Err(FilterError::UnknownLogical {
                op: key.to_string(),
            })
        }
    };
    if rules.is_some_and(|r| r.no_logical) {
        return Err(FilterError::LogicalNotAllowed { op });
    }
    let items = match value {
        Value::Array(items) if !items.is_empty() => items,
        _ => return Err(FilterError::InvalidLogical { op }),
    };
    let mut children = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Object(m) => children.push(parse_object(m, rules)?),
            _ => return Err(FilterError::InvalidLogical { op }),
        }
    }
    Ok(match op {
        "$and" => Filter::And(children),
        "$or" => Filter::Or(children),
        _ => Filter::Nor(children),
    })
}

fn parse_field(
    field: &str,
    value: &Value,
    rules: Option<&FieldRules>,
) -> Result<Vec<Filter>, FilterError> {
    if field.is_empty() {
        return Err(FilterError::EmptyField);
    }
    let rule = match rules {
        None => None,
        Some(r) => Some(r.rule(field).ok_or_else(|| FilterError::FieldNotAllowed {
            field: field.to_string(),
            supported: r.supported(),
        })?),
    };
    let conditions: Vec<(Op, &Value)> = match value {
        Value::Object(m) if m.keys().any(|k| k.starts_with('$')) => {
            if let Some(plain) = m.keys().find(|k| !k.starts_with('$')) {
                return Err(FilterError::MixedCondition {
                    field: field.to_string(),
                    key: plain.clone(),
                });
            }
            m.iter()
                .map(|(k, v)| {
                    Op::from_name(k)
                        .map(|op| (op, v))
                        .ok_or_else(|| FilterError::UnknownOperator {
                            op: k.clone(),
                            field: field.to_string(),
                        })
                })
                .collect::<Result<_, _>>()?
        }
        Value::Object(m) if m.is_empty() => {
            return Err(FilterError::EmptyCondition {
                field: field.to_string(),
            });
        }
        // A bare value, including a plain object or array, is equality.
        v => vec![(Op::Eq, v)],
    };
    let mut out = Vec::with_capacity(conditions.len());
    for (op, v) in conditions {
        if let Some((ops, kind)) = rule {
            if !ops.contains(&op) {
                return Err(FilterError::OperatorNotAllowed {
                    op,
                    field: field.to_string(),
                    allowed: ops
                        .iter()
                        .map(|o| o.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            check_value(field, op, v, kind)?;
        } else {
            check_value(field, op, v, ValueKind::Any)?;
        }
        out.push(Filter::field(field, op, v.clone()));
    }
    Ok(out)
}

fn check_value(field: &str, op: Op, v: &Value, kind: ValueKind) -> Result<(), FilterError> {
    let bad = |expected| {
        Err(FilterError::InvalidValue {
            op,
            field: field.to_string(),
            expected,
        })
    };
    let scalar_ok = |x: &Value| match kind {
        ValueKind::Any => matches!(x, Value::String(_) | Value::Number(_) | Value::Bool(_)),
        k => k.accepts(x),
    };
    let scalar_expected = match kind {
        ValueKind::Any => "a string, number or boolean",
        k => k.describe(),
    };
    match op {
        Op::Eq | Op::Ne => {
            if !v.is_null() && kind != ValueKind::Any && !kind.accepts(v) && !v.is_array() {
                return bad(kind.describe());
            }
        }
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            if !scalar_ok(v) {
                return bad(scalar_expected);
            }
        }
        Op::In | Op::Nin => match v {
            Value::Array(items) => {
                if kind != ValueKind::Any && items.iter().any(|x| !x.is_null() && !kind.accepts(x))
                {
                    return bad(match kind {
                        ValueKind::String => "an array of strings",
                        ValueKind::Number => "an array of numbers",
                        ValueKind::Bool => "an array of booleans",
                        _ => "an array of RFC 3339 timestamp strings",
                    });
                }
            }
            _ => return bad("an array"),
        },
        Op::Exists => {
            if !v.is_boolean() {
                return bad("true or false");
            }
        }
        Op::Autocomplete | Op::Q => {
            if !v.is_string() {
                return bad("a string");
            }
        }
        Op::Contains => {
            if v.is_null() || v.is_array() {
                return bad("a single value to look for in the array");
            }
        }
    }
    Ok(())
}

/// Value at a dotted path. A literal key containing dots wins over descending; an array on the
/// way is traversed element by element and the results flattened (so `mentioned_users.id` gives
/// the list of ids). An empty result is absent.
pub fn resolve_path(doc: &Value, path: &str) -> Option<Value> {
    match doc {
        Value::Object(m) => {
            if let Some(v) = m.get(path) {
                return Some(v.clone());
            }
            let (head, rest) = path.split_once('.')?;
            resolve_path(m.get(head)?, rest)
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match resolve_path(item, path) {
                    Some(Value::Array(inner)) => out.extend(inner),
                    Some(Value::Null) | None => {}
                    Some(v) => out.push(v),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        _ => None,
    }
}

fn eval_op(op: Op, actual: Option<&Value>, expected: &Value) -> bool {
    match op {
        Op::Eq => eq_matches(actual, expected),
        // Like MongoDB, the negations also match documents that lack the field.
        Op::Ne => !eq_matches(actual, expected),
        Op::In => in_matches(actual, expected),
        Op::Nin => !in_matches(actual, expected),
        Op::Gt => ordered(actual, expected, |o| o == Ordering::Greater),
        Op::Gte => ordered(actual, expected, |o| o != Ordering::Less),
        Op::Lt => ordered(actual, expected, |o| o == Ordering::Less),
        Op::Lte => ordered(actual, expected, |o| o != Ordering::Greater),
        Op::Exists => {
            // Stream's `attachments: {$exists: true}` means "has attachments", and documents
            // serialise missing lists as [], so an empty array counts as absent.
            let present = match actual {
                None => false,
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            expected.as_bool() == Some(present)
        }
        Op::Autocomplete => text_matches(actual, expected, autocomplete),
        Op::Q => text_matches(actual, expected, full_text),
        Op::Contains => match actual {
            Some(Value::Array(items)) => items.iter().any(|item| contains_match(item, expected)),
            _ => false,
        },
    }
}

fn eq_matches(actual: Option<&Value>, expected: &Value) -> bool {
    match (actual, expected) {
        (None, Value::Null) => true,
        (None, _) | (Some(_), Value::Null) => false,
        // An array compared with an array is set equality (`members: {$eq: [a, b]}` is the
        // channel with exactly those members, in any order).
        (Some(Value::Array(a)), Value::Array(e)) => {
            a.iter().all(|x| e.iter().any(|y| values_equal(x, y)))
                && e.iter().all(|y| a.iter().any(|x| values_equal(x, y)))
        }
        // A scalar compared with an array field means "the array contains it" (`members: "tom"`).
        (Some(Value::Array(a)), e) => a.iter().any(|x| values_equal(x, e)),
        (Some(a), e) => values_equal(a, e),
    }
}

fn in_matches(actual: Option<&Value>, expected: &Value) -> bool {
    expected
        .as_array()
        .is_some_and(|items| items.iter().any(|item| eq_matches(actual, item)))
}

fn ordered(actual: Option<&Value>, expected: &Value, accept: impl Fn(Ordering) -> bool) -> bool {
    match actual {
        None => false,
        Some(Value::Array(items)) => items
            .iter()
            .any(|x| compare_same_type(x, expected).is_some_and(&accept)),
        Some(a) => compare_same_type(a, expected).is_some_and(accept),
    }
}

fn contains_match(item: &Value, expected: &Value) -> bool {
    match (item, expected) {
        // `$contains` with an object matches an element carrying at least those keys.
        (Value::Object(i), Value::Object(e)) => e
            .iter()
            .all(|(k, v)| i.get(k).is_some_and(|x| values_equal(x, v))),
        _ => values_equal(item, expected),
    }
}

fn text_matches(
    actual: Option<&Value>,
    query: &Value,
    rule: fn(&[String], &[String]) -> bool,
) -> bool {
    let Some(query) = query.as_str() else {
        return false;
    };
    let terms = words(query);
    if terms.is_empty() {
        return false;
    }
    let mut doc_words = Vec::new();
    match actual {
        Some(Value::String(s)) => doc_words.extend(words(s)),
        Some(Value::Array(items)) => {
            for s in items.iter().filter_map(Value::as_str) {
                doc_words.extend(words(s));
            }
        }
        _ => return false,
    }
    rule(&terms, &doc_words)
}

fn autocomplete(terms: &[String], doc: &[String]) -> bool {
    terms
        .iter()
        .all(|t| doc.iter().any(|w| w.starts_with(t.as_str())))
}

fn full_text(terms: &[String], doc: &[String]) -> bool {
    terms.iter().all(|t| doc.iter().any(|w| w == t))
}

/// Lower-cased words of a text: maximal runs of letters and digits. The one word rule used by
/// `$autocomplete` and `$q` (and by search relevance, so results agree with the filter).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn cmp_numbers(a: &Number, b: &Number) -> Ordering {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x.cmp(&y);
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x.cmp(&y);
    }
    let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
}

/// Strings order by instant when both are timestamps (so precisions and offsets mix), otherwise
/// lexically; a timestamp sorts before a non-timestamp so the order stays total.
fn cmp_strings(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    match (parse_time(a), parse_time(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Ordering of two values of the same JSON scalar type; None across types (a type mismatch never
/// matches a comparison) and for arrays/objects.
fn compare_same_type(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Some(cmp_numbers(x, y)),
        (Value::String(x), Value::String(y)) => Some(cmp_strings(x, y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => a == b || compare_same_type(a, b) == Some(Ordering::Equal),
    }
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// A total order over present values, for sorting: by type (bool < number < string < array <
/// object), then within the type.
fn total_cmp(a: &Value, b: &Value) -> Ordering {
    type_rank(a).cmp(&type_rank(b)).then_with(|| match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = total_cmp(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(_), Value::Object(_)) => a.to_string().cmp(&b.to_string()),
        _ => compare_same_type(a, b).unwrap_or(Ordering::Equal),
    })
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SortField {
    pub field: String,
    /// 1 ascending, -1 descending.
    pub direction: i8,
}

impl SortField {
    pub fn new(field: impl Into<String>, direction: i8) -> Self {
        SortField {
            field: field.into(),
            direction,
        }
    }
}

/// Parse Stream's sort: a list of `{"field": f, "direction": d}` (what the SDKs send), a list of
/// `{f: d}` objects, or one object `{f: d, ...}` (key order kept). `null` is no sort.
pub fn parse_sort(value: &Value) -> Result<Vec<SortField>, FilterError> {
    let mut out = Vec::new();
    match value {
        Value::Null => {}
        Value::Object(m) => parse_sort_item(m, &mut out)?,
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(m) => parse_sort_item(m, &mut out)?,
                    other => {
                        return Err(FilterError::InvalidSort(format!(
                            "each sort entry must be an object like {{\"field\": \"created_at\", \"direction\": -1}}, got {}",
                            kind_name(other)
                        )))
                    }
                }
            }
        }
        other => {
            return Err(FilterError::InvalidSort(format!(
                "sort must be a list of {{\"field\", \"direction\"}} objects, got {}",
                kind_name(other)
            )))
        }
    }
    Ok(out)
}

fn parse_sort_item(m: &Map<String, Value>, out: &mut Vec<SortField>) -> Result<(), FilterError> {
    // Same test as the Python SDK's normalize_sort: both keys present means the structured form;
    // anything else is `{field_name: direction}` (so a custom field called "field" still works).
    if let (Some(Value::String(field)), Some(direction)) = (m.get("field"), m.get("direction")) {
        if let Some(extra) = m.keys().find(|k| *k != "field" && *k != "direction") {
            return Err(FilterError::InvalidSort(format!(
                "unexpected key {extra} in sort entry for field {field}"
            )));
        }
        out.push(SortField {
            field: sort_field_name(field)?,
            direction: sort_direction(field, direction)?,
        });
        return Ok(());
    }
    for (field, direction) in m {
        out.push(SortField {
            field: sort_field_name(field)?,
            direction: sort_direction(field, direction)?,
        });
    }
    Ok(())
}

fn sort_field_name(field: &str) -> Result<String, FilterError> {
    if field.is_empty() {
        return Err(FilterError::InvalidSort(
            "sort field names must not be empty".to_string(),
        ));
    }
    Ok(field.to_string())
}

fn sort_direction(field: &str, v: &Value) -> Result<i8, FilterError> {
    match v.as_f64() {
        Some(1.0) => Ok(1),
        Some(-1.0) => Ok(-1),
        _ => Err(FilterError::InvalidSort(format!(
            "direction for field {field} must be 1 (ascending) or -1 (descending), got {v}"
        ))),
    }
}

/// Compare two documents by a sort list; ties fall through to the next field. A missing (or
/// null) value counts as larger than any value, as in Stream's Postgres backend and its SDKs'
/// local sorting: last when ascending, first when descending.
pub fn compare(
    sort: &[SortField],
    a: &dyn Fn(&str) -> Option<Value>,
    b: &dyn Fn(&str) -> Option<Value>,
) -> Ordering {
    for s in sort {
        let x = a(&s.field).filter(|v| !v.is_null());
        let y = b(&s.field).filter(|v| !v.is_null());
        // Documents without the field come last in either direction, as Stream sorts (pinned
        // channels first with `pinned_at: -1`, channels without messages after the rest).
        let o = match (&x, &y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(p), Some(q)) if s.direction < 0 => total_cmp(p, q).reverse(),
            (Some(p), Some(q)) => total_cmp(p, q),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// [`compare`] over two JSON documents, resolving dotted paths.
pub fn compare_json(sort: &[SortField], a: &Value, b: &Value) -> Ordering {
    compare(sort, &|p| resolve_path(a, p), &|p| resolve_path(b, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(filter: Value, doc: Value) -> bool {
        Filter::parse(&filter, None)
            .expect("filter parses")
            .matches_json(&doc)
    }

    fn user() -> Value {
        json!({
            "id": "john-doe",
            "name": "Curiosity Rover",
            "role": "user",
            "age": 31,
            "score": 2.5,
            "banned": false,
            "teams": ["red", "blue"],
            "last_active": "2021-01-15T09:30:20.45Z",
            "created_at": "2020-06-01T00:00:00Z",
            "address": {"city": "Amsterdam", "geo": {"lat": 52}},
            "tags": [],
            "mentioned_users": [{"id": "a", "name": "Ann"}, {"id": "b"}],
            "weird.key": "literal",
            "nothing": null
        })
    }

    #[test]
    fn eq_bare_and_explicit() {
        assert!(m(json!({"name": "Curiosity Rover"}), user()));
        assert!(m(json!({"name": {"$eq": "Curiosity Rover"}}), user()));
        assert!(!m(json!({"name": "curiosity rover"}), user()));
        assert!(m(json!({"age": 31}), user()));
        assert!(m(json!({"age": 31.0}), user()));
        assert!(m(json!({"banned": false}), user()));
        assert!(!m(json!({"banned": true}), user()));
        assert!(m(
            json!({"address": {"geo": {"lat": 52}, "city": "Amsterdam"}}),
            user()
        ));
    }

    #[test]
    fn eq_null_means_absent() {
        assert!(m(json!({"missing": null}), user()));
        assert!(m(json!({"nothing": {"$eq": null}}), user()));
        assert!(!m(json!({"name": null}), user()));
        assert!(m(json!({"name": {"$ne": null}}), user()));
        assert!(!m(json!({"missing": {"$ne": null}}), user()));
    }

    #[test]
    fn ne_and_missing_fields() {
        assert!(m(json!({"role": {"$ne": "admin"}}), user()));
        assert!(!m(json!({"role": {"$ne": "user"}}), user()));
        assert!(m(json!({"missing": {"$ne": "x"}}), user()));
        assert!(!m(json!({"teams": {"$ne": "red"}}), user()));
        assert!(m(json!({"teams": {"$ne": "green"}}), user()));
    }

    #[test]
    fn range_operators() {
        assert!(m(json!({"age": {"$gt": 30}}), user()));
        assert!(!m(json!({"age": {"$gt": 31}}), user()));
        assert!(m(json!({"age": {"$gte": 31}}), user()));
        assert!(m(json!({"age": {"$lt": 31.5}}), user()));
        assert!(!m(json!({"age": {"$lt": 31}}), user()));
        assert!(m(json!({"age": {"$lte": 31}}), user()));
        assert!(m(json!({"score": {"$gt": 2, "$lt": 3}}), user()));
        assert!(!m(json!({"score": {"$gt": 2, "$lt": 2.4}}), user()));
        assert!(m(json!({"id": {"$gt": "john"}}), user()));
        assert!(!m(json!({"id": {"$lt": "john"}}), user()));
        assert!(!m(json!({"missing": {"$lt": 100}}), user()));
        assert!(m(json!({"banned": {"$lt": true}}), user()));
    }

    #[test]
    fn timestamps_compare_as_instants_across_precision() {
        assert!(m(
            json!({"last_active": {"$gt": "2021-01-15T09:30:20Z"}}),
            user()
        ));
        assert!(m(
            json!({"last_active": {"$eq": "2021-01-15T09:30:20.450000Z"}}),
            user()
        ));
        assert!(m(
            json!({"last_active": {"$eq": "2021-01-15T10:30:20.45+01:00"}}),
            user()
        ));
        assert!(m(json!({"last_active": {"$gte": "2021-01-15"}}), user()));
        assert!(!m(json!({"last_active": {"$lt": "2021-01-15"}}), user()));
        assert!(m(
            json!({"last_active": {"$lt": "2021-01-15T09:30:21"}}),
            user()
        ));
        assert!(m(
            json!({"created_at": {"$lte": "2020-06-01T00:00:00.000Z"}}),
            user()
        ));
        // Lexically "…20.45Z" < "…20Z"; as instants it is later.
        assert_eq!(
            cmp_strings("2021-01-15T09:30:20.45Z", "2021-01-15T09:30:20Z"),
            Ordering::Greater
        );
    }

    #[test]
    fn type_mismatch_never_matches() {
        assert!(!m(json!({"age": "31"}), user()));
        assert!(!m(json!({"age": {"$gt": "1"}}), user()));
        assert!(!m(json!({"name": {"$lt": 5}}), user()));
        assert!(!m(json!({"banned": 0}), user()));
        assert!(!m(json!({"age": {"$in": ["31", true]}}), user()));
        assert!(!m(
            json!({"name": {"$autocomplete": "1"}}),
            json!({"name": 12})
        ));
        assert!(!m(json!({"age": {"$contains": 31}}), user()));
        assert!(!m(json!({"address": {"$gt": "a"}}), user()));
    }

    #[test]
    fn in_and_nin() {
        assert!(m(json!({"id": {"$in": ["jack", "john-doe"]}}), user()));
        assert!(!m(json!({"id": {"$in": ["jack"]}}), user()));
        assert!(!m(json!({"id": {"$in": []}}), user()));
        assert!(m(json!({"id": {"$nin": ["jack"]}}), user()));
        assert!(!m(json!({"id": {"$nin": ["jack", "john-doe"]}}), user()));
        assert!(m(json!({"missing": {"$nin": ["x"]}}), user()));
        assert!(m(json!({"missing": {"$in": [null, "x"]}}), user()));
        // On an array field: any element in the list.
        assert!(m(json!({"teams": {"$in": ["green", "blue"]}}), user()));
        assert!(!m(json!({"teams": {"$in": ["green"]}}), user()));
        assert!(!m(json!({"teams": {"$nin": ["blue"]}}), user()));
    }

    #[test]
    fn arrays_eq_and_contains() {
        let ch = json!({"members": ["thierry", "marcelo"]});
        assert!(m(json!({"members": "marcelo"}), ch.clone()));
        assert!(m(json!({"members": {"$in": ["thierry"]}}), ch.clone()));
        assert!(m(
            json!({"members": {"$eq": ["marcelo", "thierry"]}}),
            ch.clone()
        ));
        assert!(m(json!({"members": ["thierry", "marcelo"]}), ch.clone()));
        assert!(!m(json!({"members": ["thierry"]}), ch.clone()));
        assert!(!m(
            json!({"members": ["thierry", "marcelo", "x"]}),
            ch.clone()
        ));
        assert!(m(json!({"teams": {"$contains": "red"}}), user()));
        assert!(!m(json!({"teams": {"$contains": "green"}}), user()));
        assert!(!m(json!({"name": {"$contains": "Rover"}}), user()));
        assert!(m(
            json!({"mentioned_users": {"$contains": {"id": "a"}}}),
            user()
        ));
        assert!(!m(
            json!({"mentioned_users": {"$contains": {"id": "a", "name": "Bob"}}}),
            user()
        ));
        assert!(m(json!({"mentioned_users.id": {"$contains": "b"}}), user()));
        assert!(!m(
            json!({"mentioned_users.id": {"$contains": "c"}}),
            user()
        ));
        assert!(m(json!({"teams": {"$gt": "bz"}}), user()));
    }

    #[test]
    fn exists() {
        assert!(m(json!({"last_active": {"$exists": true}}), user()));
        assert!(!m(json!({"last_active": {"$exists": false}}), user()));
        assert!(m(json!({"missing": {"$exists": false}}), user()));
        assert!(!m(json!({"missing": {"$exists": true}}), user()));
        assert!(m(json!({"nothing": {"$exists": false}}), user()));
        assert!(m(json!({"tags": {"$exists": false}}), user()));
        assert!(m(json!({"teams": {"$exists": true}}), user()));
        assert!(m(json!({"address.geo.lat": {"$exists": true}}), user()));
    }

    #[test]
    fn autocomplete_prefixes_words() {
        let names = ["Curiosity Rover", "Roxy", "Roxanne", "Bob", "Aaron"];
        let hits: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| m(json!({"name": {"$autocomplete": "ro"}}), json!({"name": n})))
            .collect();
        assert_eq!(hits, vec!["Curiosity Rover", "Roxy", "Roxanne"]);
        assert!(m(json!({"name": {"$autocomplete": "cur ro"}}), user()));
        assert!(m(json!({"name": {"$autocomplete": "ROV CURIO"}}), user()));
        assert!(!m(json!({"name": {"$autocomplete": "cur x"}}), user()));
        assert!(!m(json!({"name": {"$autocomplete": "over"}}), user()));
        assert!(m(json!({"id": {"$autocomplete": "john-d"}}), user()));
        assert!(!m(json!({"name": {"$autocomplete": ""}}), user()));
        assert!(!m(json!({"missing": {"$autocomplete": "a"}}), user()));
        assert!(m(json!({"teams": {"$autocomplete": "blu"}}), user()));
        assert!(m(
            json!({"name": {"$autocomplete": "élo"}}),
            json!({"name": "Ève Éloïse"})
        ));
    }

    #[test]
    fn full_text_q() {
        let msg = json!({"text": "Hello, supercalifragilisticexpialidocious World!"});
        assert!(m(
            json!({"text": {"$q": "supercalifragilisticexpialidocious"}}),
            msg.clone()
        ));
        assert!(m(json!({"text": {"$q": "world HELLO"}}), msg.clone()));
        assert!(!m(json!({"text": {"$q": "cious"}}), msg.clone()));
        assert!(!m(json!({"text": {"$q": "hello moon"}}), msg.clone()));
        assert!(!m(json!({"text": {"$q": "hel"}}), msg.clone()));
        assert!(!m(json!({"text": {"$q": "  "}}), msg));
    }

    #[test]
    fn logical_combinations() {
        assert!(m(json!({"$or": [{"role": "admin"}, {"age": 31}]}), user()));
        assert!(!m(json!({"$or": [{"role": "admin"}, {"age": 30}]}), user()));
        assert!(m(
            json!({"$and": [{"role": "user"}, {"age": {"$gte": 18}}]}),
            user()
        ));
        assert!(!m(
            json!({"$and": [{"role": "user"}, {"age": {"$lt": 18}}]}),
            user()
        ));
        assert!(m(
            json!({"$nor": [{"role": "admin"}, {"banned": true}]}),
            user()
        ));
        assert!(!m(
            json!({"$nor": [{"role": "admin"}, {"banned": false}]}),
            user()
        ));
        assert!(m(
            json!({"role": "user", "$or": [{"teams": "green"}, {"$and": [{"age": 31}, {"$nor": [{"id": "x"}]}]}]}),
            user()
        ));
        assert!(!m(
            json!({"role": "admin", "$or": [{"age": 31}, {"age": 32}]}),
            user()
        ));
        assert!(m(json!({}), user()));
        assert!(m(Value::Null, user()));
    }

    #[test]
    fn nested_and_dotted_fields() {
        assert!(m(json!({"address.city": "Amsterdam"}), user()));
        assert!(m(json!({"address.geo.lat": {"$gte": 50}}), user()));
        assert!(!m(json!({"address.geo.lon": {"$gte": 50}}), user()));
        assert!(!m(json!({"address.city.x": "A"}), user()));
        assert!(m(json!({"weird.key": "literal"}), user()));
        assert!(m(json!({"mentioned_users.name": "Ann"}), user()));
        let member = json!({"user": {"name": "Marc Smith"}});
        let f =
            Filter::parse(&json!({"member.user.name": {"$autocomplete": "smi"}}), None).unwrap();
        assert!(f.matches(&|p| p
            .strip_prefix("member.")
            .and_then(|rest| resolve_path(&member, rest))));
    }

    #[test]
    fn parsed_shape() {
        let f = Filter::parse(
            &json!({"id": {"$in": ["a"]}, "age": {"$gt": 1, "$lt": 5}}),
            None,
        )
        .unwrap();
        assert_eq!(
            f,
            Filter::And(vec![
                Filter::field("id", Op::In, json!(["a"])),
                Filter::field("age", Op::Gt, json!(1)),
                Filter::field("age", Op::Lt, json!(5)),
            ])
        );
        assert_eq!(
            Filter::parse(&json!({"name": "x"}), None).unwrap(),
            Filter::field("name", Op::Eq, json!("x"))
        );
        assert_eq!(Filter::parse(&json!({}), None).unwrap(), Filter::All);
        assert_eq!(
            Filter::parse(&json!({"$nor": [{"a": 1}]}), None).unwrap(),
            Filter::Nor(vec![Filter::field("a", Op::Eq, json!(1))])
        );
    }

    #[test]
    fn oversized_filters_are_refused() {
        let many: Vec<String> = (0..=MAX_FILTER_VALUES).map(|i| format!("m:{i}")).collect();
        assert!(matches!(
            Filter::parse(&json!({"cid": {"$in": many}}), None),
            Err(FilterError::TooLarge(_))
        ));
        let enough: Vec<String> = (0..MAX_FILTER_VALUES).map(|i| format!("m:{i}")).collect();
        let f = Filter::parse(&json!({"cid": {"$in": enough}}), None).unwrap();
        assert_eq!(f.key_values("cid").unwrap().len(), MAX_FILTER_VALUES);
        let mut deep = json!({"id": "a"});
        for _ in 0..=MAX_FILTER_DEPTH {
            deep = json!({"$and": [deep]});
        }
        assert!(matches!(
            Filter::parse(&deep, None),
            Err(FilterError::TooLarge(_))
        ));
    }

    #[test]
    fn parse_errors() {
        let err = |v: Value| Filter::parse(&v, None).unwrap_err();
        assert_eq!(
            err(json!({"name": {"$foo": 1}})).to_string(),
            "invalid operator $foo for field name"
        );
        assert!(matches!(err(json!([1])), FilterError::NotAnObject { .. }));
        assert!(matches!(err(json!("x")), FilterError::NotAnObject { .. }));
        assert!(matches!(
            err(json!({"$xor": []})),
            FilterError::UnknownLogical { .. }
        ));
        assert!(matches!(
            err(json!({"$or": []})),
            FilterError::InvalidLogical { op: "$or" }
        ));
        assert!(matches!(
            err(json!({"$and": {"a": 1}})),
            FilterError::InvalidLogical { op: "$and" }
        ));
        assert!(matches!(
            err(json!({"$nor": [1]})),
            FilterError::InvalidLogical { op: "$nor" }
        ));
        assert!(matches!(
            err(json!({"id": {"$in": "a"}})),
            FilterError::InvalidValue { op: Op::In, .. }
        ));
        assert!(matches!(
            err(json!({"id": {"$nin": 3}})),
            FilterError::InvalidValue { op: Op::Nin, .. }
        ));
        assert!(matches!(
            err(json!({"x": {"$exists": "yes"}})),
            FilterError::InvalidValue { .. }
        ));
        assert!(matches!(
            err(json!({"x": {"$autocomplete": 3}})),
            FilterError::InvalidValue { .. }
        ));
        assert!(matches!(
            err(json!({"x": {"$q": ["a"]}})),
            FilterError::InvalidValue { .. }
        ));
        assert!(matches!(
            err(json!({"x": {"$gt": [1]}})),
            FilterError::InvalidValue { .. }
        ));
        assert!(matches!(
            err(json!({"x": {"$gt": null}})),
            FilterError::InvalidValue { .. }
        ));
        assert!(matches!(
            err(json!({"x": {"$contains": [1]}})),
            FilterError::InvalidValue { .. }
        ));
        assert!(matches!(
            err(json!({"x": {}})),
            FilterError::EmptyCondition { .. }
        ));
        assert!(matches!(
            err(json!({"x": {"$eq": 1, "y": 2}})),
            FilterError::MixedCondition { .. }
        ));
        assert!(matches!(err(json!({"": 1})), FilterError::EmptyField));
        assert!(matches!(
            err(json!({"x": {"$or": [{"a": 1}]}})),
            FilterError::UnknownOperator { .. }
        ));
        assert!(matches!(
            err(json!({"$or": [{"x": {"$bad": 1}}]})),
            FilterError::UnknownOperator { .. }
        ));
    }

    fn user_rules() -> FieldRules {
        FieldRules::new()
            .typed(
                "id",
                ValueKind::String,
                &[
                    Op::Eq,
                    Op::Gt,
                    Op::Gte,
                    Op::Lt,
                    Op::Lte,
                    Op::In,
                    Op::Autocomplete,
                ],
            )
            .typed("banned", ValueKind::Bool, &[Op::Eq])
            .typed(
                "last_active",
                ValueKind::Timestamp,
                &[Op::Eq, Op::Gt, Op::Gte, Op::Lt, Op::Lte, Op::In, Op::Exists],
            )
            .field("teams", &[Op::Eq, Op::Contains])
    }

    #[test]
    fn field_rules() {
        let rules = user_rules();
        let ok = |v: Value| Filter::parse(&v, Some(&rules));
        assert!(ok(json!({"id": {"$in": ["a"]}, "banned": true})).is_ok());
        assert!(ok(json!({"$or": [{"id": "a"}, {"last_active": {"$exists": false}}]})).is_ok());
        assert!(ok(json!({"last_active": {"$gt": "2021-01-15"}})).is_ok());

        let e = ok(json!({"nickname": "x"})).unwrap_err();
        assert!(matches!(e, FilterError::FieldNotAllowed { ref field, .. } if field == "nickname"));
        assert!(
            e.to_string()
                .contains("supported fields: id, banned, last_active, teams"),
            "{e}"
        );

        let e = ok(json!({"banned": {"$ne": true}})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "operator $ne is not allowed for field banned (allowed: $eq)"
        );
        let e = ok(json!({"$and": [{"teams": {"$in": ["x"]}}]})).unwrap_err();
        assert!(matches!(
            e,
            FilterError::OperatorNotAllowed { op: Op::In, .. }
        ));

        assert!(matches!(
            ok(json!({"banned": "yes"})).unwrap_err(),
            FilterError::InvalidValue { .. }
        ));
        assert!(matches!(
            ok(json!({"last_active": {"$gt": "yesterday"}})).unwrap_err(),
            FilterError::InvalidValue { .. }
        ));
        assert!(matches!(
            ok(json!({"id": {"$in": ["a", 1]}})).unwrap_err(),
            FilterError::InvalidValue { .. }
        ));

        let custom = user_rules().custom_fields(&Op::COMPARISON);
        assert!(Filter::parse(&json!({"age": {"$gte": 3}}), Some(&custom)).is_ok());
        assert!(matches!(
            Filter::parse(&json!({"age": {"$autocomplete": "3"}}), Some(&custom)).unwrap_err(),
            FilterError::OperatorNotAllowed { .. }
        ));

        let strict = user_rules().without_logical();
        assert!(matches!(
            Filter::parse(&json!({"$or": [{"id": "a"}, {"id": "b"}]}), Some(&strict)).unwrap_err(),
            FilterError::LogicalNotAllowed { op: "$or" }
        ));
    }

    #[test]
    fn key_values_for_lookups() {
        let kv = |v: Value| Filter::parse(&v, None).unwrap().key_values("cid");
        assert_eq!(
            kv(json!({"cid": "messaging:a"})),
            Some(vec![json!("messaging:a")])
        );
        assert_eq!(
            kv(json!({"type": "messaging", "cid": {"$in": ["m:a", "m:b", "m:a"]}})),
            Some(vec![json!("m:a"), json!("m:b")])
        );
        assert_eq!(
            kv(json!({"cid": {"$in": ["m:a", "m:b"]}, "$and": [{"cid": "m:b"}]})),
            Some(vec![json!("m:b")])
        );
        assert_eq!(
            kv(json!({"$or": [{"cid": "m:a"}, {"cid": {"$in": ["m:b"]}}]})),
            Some(vec![json!("m:a"), json!("m:b")])
        );
        assert_eq!(kv(json!({"$or": [{"cid": "m:a"}, {"type": "x"}]})), None);
        assert_eq!(kv(json!({"type": "messaging"})), None);
        assert_eq!(kv(json!({"cid": {"$ne": "m:a"}})), None);
        assert_eq!(kv(json!({"$nor": [{"cid": "m:a"}]})), None);
        assert_eq!(kv(json!({"cid": null})), None);
        assert_eq!(kv(json!({})), None);
    }

    #[test]
    fn introspection_and_builders() {
        let f = Filter::parse(
            &json!({"members": {"$in": ["a"]}, "$or": [{"hidden": true}, {"text": {"$q": "x"}}]}),
            None,
        )
        .unwrap();
        assert_eq!(f.fields(), vec!["members", "hidden", "text"]);
        assert!(f.mentions("hidden"));
        assert!(!f.mentions("muted"));
        assert!(f.has_op(Op::Q));
        assert!(!f.has_op(Op::Autocomplete));
        let scoped = Filter::All
            .and(Filter::field("a", Op::Eq, json!(1)))
            .and(Filter::field("b", Op::Eq, json!(2)));
        assert_eq!(
            scoped,
            Filter::And(vec![
                Filter::field("a", Op::Eq, json!(1)),
                Filter::field("b", Op::Eq, json!(2))
            ])
        );
        assert!(scoped.matches_json(&json!({"a": 1, "b": 2})));
        assert!(!scoped.matches_json(&json!({"a": 1, "b": 3})));
    }

    #[test]
    fn sort_parsing_both_forms() {
        let wire =
            json!([{"field": "last_active", "direction": -1}, {"field": "id", "direction": 1}]);
        let expected = vec![SortField::new("last_active", -1), SortField::new("id", 1)];
        assert_eq!(parse_sort(&wire).unwrap(), expected);
        assert_eq!(
            parse_sort(&json!({"last_active": -1, "id": 1})).unwrap(),
            expected
        );
        assert_eq!(
            parse_sort(&json!([{"last_active": -1}, {"id": 1}])).unwrap(),
            expected
        );
        assert_eq!(
            parse_sort(&json!({"field": "age", "direction": -1})).unwrap(),
            vec![SortField::new("age", -1)]
        );
        assert_eq!(
            parse_sort(&json!({"field": 1})).unwrap(),
            vec![SortField::new("field", 1)]
        );
        assert_eq!(parse_sort(&json!([])).unwrap(), vec![]);
        assert_eq!(parse_sort(&Value::Null).unwrap(), vec![]);
        assert_eq!(
            parse_sort(&json!([{"field": "x", "direction": 1.0}])).unwrap(),
            vec![SortField::new("x", 1)]
        );
    }

    #[test]
    fn sort_parse_errors() {
        for bad in [
            json!([{"field": "x", "direction": 0}]),
            json!([{"field": "x", "direction": 2}]),
            json!([{"field": "x", "direction": "desc"}]),
            json!({"x": "-1"}),
            json!({"field": "x"}),
            json!([{"field": "", "direction": 1}]),
            json!([{"field": "x", "direction": 1, "extra": true}]),
            json!(["x"]),
            json!("x"),
            json!(1),
        ] {
            assert!(
                matches!(parse_sort(&bad), Err(FilterError::InvalidSort(_))),
                "{bad} should be rejected"
            );
        }
        let e = parse_sort(&json!([{"field": "x", "direction": 0}])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid sort: direction for field x must be 1 (ascending) or -1 (descending), got 0"
        );
    }

    fn sorted(sort: Value, docs: &[Value]) -> Vec<String> {
        let sort = parse_sort(&sort).unwrap();
        let mut docs = docs.to_vec();
        docs.sort_by(|a, b| compare_json(&sort, a, b));
        docs.iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn sort_orders_with_ties_and_missing_values() {
        let docs = [
            json!({"id": "a", "age": 30, "name": "Zed"}),
            json!({"id": "b", "age": 25, "name": "Amy"}),
            json!({"id": "c", "name": "Bob"}),
            json!({"id": "d", "age": 30, "name": "Ann"}),
            json!({"id": "e", "age": null, "name": "Cat"}),
            json!({"id": "f", "age": 100, "name": "Dan"}),
        ];
        assert_eq!(
            sorted(
                json!([{"field": "age", "direction": 1}, {"field": "name", "direction": 1}]),
                &docs
            ),
            ["b", "d", "a", "f", "c", "e"]
        );
        // Missing values last in either direction (Stream: pinned channels first).
        assert_eq!(
            sorted(json!([{"age": -1}, {"name": 1}]), &docs),
            ["f", "d", "a", "b", "c", "e"]
        );
        assert_eq!(
            sorted(json!([{"age": 1}, {"name": -1}]), &docs),
            ["b", "a", "d", "f", "e", "c"]
        );
        assert_eq!(
            sorted(json!({"name": 1}), &docs),
            ["b", "d", "c", "e", "f", "a"]
        );
        // Numbers sort numerically, not as text: 100 > 30.
        assert_eq!(sorted(json!({"age": -1, "id": 1}), &docs)[0], "f");
        assert_eq!(compare_json(&[], &docs[0], &docs[1]), Ordering::Equal);
    }

    #[test]
    fn sort_timestamps_by_instant() {
        let docs = [
            json!({"id": "late", "t": "2021-01-15T09:30:20.45Z"}),
            json!({"id": "early", "t": "2021-01-15T09:30:20Z"}),
            json!({"id": "offset", "t": "2021-01-15T10:00:00+02:00"}),
        ];
        assert_eq!(sorted(json!({"t": 1}), &docs), ["offset", "early", "late"]);
    }

    #[test]
    fn words_rule() {
        assert_eq!(
            words("Hello, World! it's_42"),
            ["hello", "world", "it", "s", "42"]
        );
        assert!(words(" -- ").is_empty());
    }
}
