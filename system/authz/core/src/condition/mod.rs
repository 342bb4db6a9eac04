//! Conditions on grants: CEL expressions compiled and checked once, when they are written, and
//! evaluated on a check with a bounded cost and no I/O.
//!
//! A condition reads five names, and nothing else: `subject`, `resource`, `action` and
//! `context` (maps the caller of [`Condition::evaluate`] fills from the index and the request)
//! and `now` (the server's clock, Unix seconds). [`Condition::compile`] refuses, with the line
//! and column:
//! - a source that is blank, longer than [`MAX_SOURCE_CHARS`] (or [`MAX_SOURCE_BYTES`]) or
//!   nested deeper than
//!   [`MAX_NESTING`] brackets (the parser recurses on nesting);
//! - a syntax error;
//! - a name other than those five (a macro's own variables aside);
//! - a macro (`all`, `exists`, `exists_one`, `map`, `filter`) inside another, whose cost would
//!   grow with the product of two lists: with one level, the cost grows with the size of the
//!   inputs, which their producers bound;
//! - a result that cannot be a boolean (a literal other than `true`/`false`, a list or map
//!   literal, arithmetic).
//!
//! CEL has no loops and no recursion, the build leaves out `matches` (regular expressions) and
//! the time functions, so a compiled condition always ends. Evaluating is total: a missing
//! attribute, a type mismatch or a non-boolean result is [`Evaluation::Failed`] with the reason,
//! which a decision treats as not met.

mod tree;

use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::{Context, Env, Program, Value};

/// The longest source a condition may have, in characters.
pub const MAX_SOURCE_CHARS: usize = 1024;
/// The longest source a condition may have, in bytes of UTF-8 (a stored condition is part of a
/// unique index, whose entries PostgreSQL bounds).
pub const MAX_SOURCE_BYTES: usize = 2048;
/// The most JSON a request's attributes (properties and context together) may hold, in bytes:
/// conditions read them on every evaluation.
pub const MAX_REQUEST_ATTRIBUTE_BYTES: usize = 16 * 1024;
/// The deepest nesting of brackets (`(`, `[`, `{`) a condition may have.
pub const MAX_NESTING: usize = 32;
/// The names a condition may read.
pub const INPUTS: [&str; 5] = ["subject", "resource", "action", "context", "now"];

/// Why a condition was refused: what, and where (1-based line and column, in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct ConditionError {
    /// The line.
    pub line: u32,
    /// The column.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

impl ConditionError {
    fn at(line: u32, column: u32, message: impl Into<String>) -> Self {
        Self {
            line,
            column,
            message: message.into(),
        }
    }

    /// The error at character `offset` of `source`.
    fn at_offset(source: &str, offset: usize, message: impl Into<String>) -> Self {
        let before: String = source.chars().take(offset).collect();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Self::at(
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(column).unwrap_or(u32::MAX),
            message,
        )
    }
}

/// What a condition reads, as the caller fills it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConditionInputs {
    /// The actor: its attributes and `properties`.
    pub subject: serde_json::Value,
    /// The target: its attributes and `properties`.
    pub resource: serde_json::Value,
    /// The action: its name and `properties`.
    pub action: serde_json::Value,
    /// The request's context.
    pub context: serde_json::Value,
    /// The server's clock, Unix seconds.
    pub now: i64,
}

impl ConditionInputs {
    /// The value at a dotted `path` (`resource.properties.amount`), if there is one.
    pub fn at(&self, path: &str) -> Option<serde_json::Value> {
        let mut parts = path.split('.');
        let root = match parts.next()? {
            "subject" => &self.subject,
            "resource" => &self.resource,
            "action" => &self.action,
            "context" => &self.context,
            "now" => return Some(self.now.into()),
            _ => return None,
        };
        parts.try_fold(root, |value, part| value.get(part)).cloned()
    }
}

/// A condition's verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluation {
    /// It yielded `true`.
    Met,
    /// It yielded `false`.
    NotMet,
    /// It could not yield a boolean: why. A decision takes it as not met.
    Failed(String),
}

/// A compiled condition.
#[derive(Debug)]
pub struct Condition {
    source: String,
    /// The program, or why the source was refused (a stored condition this build cannot
    /// compile: it then never holds).
    program: Result<Program, ConditionError>,
    /// The names of [`INPUTS`] it reads, in that order.
    reads: Vec<&'static str>,
    /// The attribute paths it reads (`resource.properties.amount`, `now`), in source order.
    paths: Vec<String>,
    /// The condition lowered into [`tree`]'s operations, when it uses only those: evaluated
    /// without the interpreter.
    tree: Option<tree::Node>,
}

/// Two conditions are the same when their sources are.
impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Condition {}

impl Condition {
    /// Compiles and checks `source` (see the module documentation for what is refused).
    pub fn compile(source: &str) -> Result<Self, ConditionError> {
        if source.trim().is_empty() {
            return Err(ConditionError::at(1, 1, "a condition must not be blank"));
        }
        let chars = source.chars().count();
        if chars > MAX_SOURCE_CHARS {
            return Err(ConditionError::at_offset(
                source,
                MAX_SOURCE_CHARS,
                format!("a condition is at most {MAX_SOURCE_CHARS} characters, not {chars}"),
            ));
        }
        if source.len() > MAX_SOURCE_BYTES {
            return Err(ConditionError::at(
                1,
                1,
                format!(
                    "a condition is at most {MAX_SOURCE_BYTES} bytes of UTF-8, not {}",
                    source.len()
                ),
            ));
        }
        if let Some(offset) = too_deep(source) {
            return Err(ConditionError::at_offset(
                source,
                offset,
                format!("brackets nest at most {MAX_NESTING} deep"),
            ));
        }
        let program = Program::compile(source).map_err(|errors| {
            let first = errors.errors.first();
            let (line, column) = first.map_or((1, 1), |e| e.pos);
            let message = first.map_or_else(|| errors.to_string(), |e| e.msg.clone());
            ConditionError::at(
                u32::try_from(line.max(1)).unwrap_or(1),
                u32::try_from(column.max(1)).unwrap_or(1),
                message,
            )
        })?;
        let root = program.expression();
        let mut check = Check {
            program: &program,
            source,
            reads: Vec::new(),
            paths: Vec::new(),
            chain: None,
            bound: Vec::new(),
            in_macro: false,
        };
        check.expr(root)?;
        if let Some(why) = never_boolean(&root.expr) {
            return Err(check.error(
                root.id,
                format!("the condition yields {why}, not a boolean"),
            ));
        }
        let reads = INPUTS
            .into_iter()
            .filter(|name| check.reads.contains(name))
            .collect();
        let paths = check.paths;
        let tree = tree::lower(root);
        Ok(Self {
            source: source.to_owned(),
            program: Ok(program),
            reads,
            paths,
            tree,
        })
    }

    /// A condition as stored: compiled, or (when this build refuses it, which a write through
    /// the API never lets happen) one that never holds and says why. A grant is never widened
    /// by a condition that cannot be read.
    pub fn stored(source: &str) -> Self {
        Self::compile(source).unwrap_or_else(|error| Self {
            source: source.to_owned(),
            program: Err(error),
            reads: Vec::new(),
            paths: Vec::new(),
            tree: None,
        })
    }

    /// The attribute paths it reads, in source order: each select chain on an input
    /// (`resource.properties.amount`), or the input itself when it is read whole (`now`).
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// Whether it reads what only a request brings: `context`, or the subject's or the action's
    /// properties. A lookup, which has no request attributes, decides it as not met.
    pub fn needs_request(&self) -> bool {
        self.paths.iter().any(|path| {
            [
                "context",
                "subject",
                "action",
                "subject.properties",
                "action.properties",
            ]
            .iter()
            .any(|root| {
                path == root
                    || (path.starts_with(root)
                        && path.as_bytes().get(root.len()) == Some(&b'.')
                        && *root != "subject"
                        && *root != "action")
            })
        })
    }

    /// The value at each of [`Condition::paths`] in `inputs` (`None` where there is none).
    pub fn read(&self, inputs: &ConditionInputs) -> Vec<(String, Option<serde_json::Value>)> {
        self.paths
            .iter()
            .map(|path| (path.clone(), inputs.at(path)))
            .collect()
    }

    /// The source, as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The names of [`INPUTS`] it reads.
    pub fn reads(&self) -> &[&'static str] {
        &self.reads
    }

    /// Evaluates the condition on `inputs`: on its lowered tree when it has one, else with
    /// `cel`'s interpreter.
    pub fn evaluate(&self, inputs: &ConditionInputs) -> Evaluation {
        match &self.tree {
            Some(tree) => match tree::decide(tree, inputs) {
                Ok(true) => Evaluation::Met,
                Ok(false) => Evaluation::NotMet,
                Err(why) => Evaluation::Failed(why),
            },
            None => self.interpret(inputs),
        }
    }

    /// Whether it runs on the lowered tree (not the interpreter).
    pub fn is_lowered(&self) -> bool {
        self.tree.is_some()
    }

    /// Evaluates the condition with `cel`'s interpreter (only the names it reads are converted).
    pub fn interpret(&self, inputs: &ConditionInputs) -> Evaluation {
        let mut context = Context::with_env(standard_env());
        for name in &self.reads {
            let value = match *name {
                "subject" => cel::to_value(&inputs.subject),
                "resource" => cel::to_value(&inputs.resource),
                "action" => cel::to_value(&inputs.action),
                "context" => cel::to_value(&inputs.context),
                _ => Ok(Value::Int(inputs.now)),
            };
            match value {
                Ok(value) => context.add_variable_from_value(*name, value),
                Err(e) => return Evaluation::Failed(format!("{name} cannot be read: {e}")),
            }
        }
        let program = match &self.program {
            Ok(program) => program,
            Err(error) => {
                return Evaluation::Failed(format!("the stored condition is refused: {error}"));
            }
        };
        match program.execute(&context) {
            Ok(Value::Bool(true)) => Evaluation::Met,
            Ok(Value::Bool(false)) => Evaluation::NotMet,
            Ok(other) => Evaluation::Failed(format!(
                "the condition yielded {:?}, not a boolean",
                other.type_of()
            )),
            Err(e) => Evaluation::Failed(e.to_string()),
        }
    }
}

/// CEL's standard functions and macros, built once: building them is most of the cost of a
/// fresh `Context::default()` (tens of microseconds), and they never change.
fn standard_env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

/// The character offset where brackets first nest deeper than [`MAX_NESTING`], outside string
/// literals.
fn too_deep(source: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (offset, c) in source.chars().enumerate() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(offset);
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Why `expr` can never be a boolean, if it cannot.
fn never_boolean(expr: &Expr) -> Option<&'static str> {
    match expr {
        Expr::Literal(LiteralValue::Boolean(_)) => None,
        Expr::Literal(LiteralValue::String(_)) => Some("a string"),
        Expr::Literal(LiteralValue::Null) => Some("null"),
        Expr::Literal(_) => Some("a number or bytes"),
        Expr::List(_) => Some("a list"),
        Expr::Map(_) | Expr::Struct(_) => Some("a map"),
        Expr::Call(call)
            if matches!(
                call.func_name.as_str(),
                "_+_" | "_-_" | "_*_" | "_/_" | "_%_" | "-_" | "size"
            ) =>
        {
            Some("a number")
        }
        _ => None,
    }
}

/// `a.b.c` for a chain of selects on a name, else `None`.
fn select_chain(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Ident(name) => Some(name.clone()),
        Expr::Select(select) => {
            select_chain(&select.operand).map(|operand| format!("{operand}.{}", select.field))
        }
        _ => None,
    }
}

/// The walk that checks names and macros and collects what is read.
struct Check<'a> {
    program: &'a Program,
    source: &'a str,
    reads: Vec<&'static str>,
    paths: Vec<String>,
    /// The dotted path of the select chain being walked, for its name to record.
    chain: Option<String>,
    /// The variables the enclosing macros bind.
    bound: Vec<String>,
    in_macro: bool,
}

impl Check<'_> {
    fn error(&self, id: u64, message: String) -> ConditionError {
        let offset = self
            .program
            .source_info()
            .offset_for(id)
            .map_or(0, |(start, _)| start as usize);
        // The parser's offsets count bytes; positions are in characters.
        let offset = self
            .source
            .char_indices()
            .take_while(|(byte, _)| *byte < offset)
            .count();
        ConditionError::at_offset(self.source, offset, message)
    }

    fn expr(&mut self, e: &IdedExpr) -> Result<(), ConditionError> {
        match &e.expr {
            Expr::Ident(name) => {
                if self.bound.iter().any(|b| b == name) {
                    return Ok(());
                }
                match INPUTS.iter().find(|input| **input == name) {
                    Some(input) => {
                        if !self.reads.contains(input) {
                            self.reads.push(input);
                        }
                        let path = self.chain.take().unwrap_or_else(|| (*input).to_owned());
                        if !self.paths.contains(&path) {
                            self.paths.push(path);
                        }
                        Ok(())
                    }
                    None => Err(self.error(
                        e.id,
                        format!(
                            "`{name}` is not something a condition can read (it reads {})",
                            INPUTS.join(", ")
                        ),
                    )),
                }
            }
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    self.expr(target)?;
                }
                call.args.iter().try_for_each(|a| self.expr(a))
            }
            Expr::Select(select) => {
                // The outermost select of a chain on a name names the path read.
                if self.chain.is_none() {
                    self.chain = select_chain(e);
                }
                let checked = self.expr(&select.operand);
                self.chain = None;
                checked
            }
            Expr::List(list) => list.elements.iter().try_for_each(|a| self.expr(a)),
            Expr::Map(map) => map
                .entries
                .iter()
                .try_for_each(|entry| self.entry(&entry.expr)),
            Expr::Struct(s) => s
                .entries
                .iter()
                .try_for_each(|entry| self.entry(&entry.expr)),
            Expr::Comprehension(c) => {
                if self.in_macro {
                    return Err(self.error(
                        e.id,
                        "a macro (all, exists, exists_one, map, filter) inside another is not \
                         allowed: its cost would grow with the product of the lists"
                            .to_owned(),
                    ));
                }
                self.expr(&c.iter_range)?;
                self.expr(&c.accu_init)?;
                let outer = self.bound.len();
                self.bound.push(c.iter_var.clone());
                self.bound.extend(c.iter_var2.clone());
                self.bound.push(c.accu_var.clone());
                self.in_macro = true;
                let inner = [&c.loop_cond, &c.loop_step, &c.result]
                    .into_iter()
                    .try_for_each(|part| self.expr(part));
                self.in_macro = false;
                self.bound.truncate(outer);
                inner
            }
            Expr::Literal(_) | Expr::Unspecified => Ok(()),
        }
    }

    fn entry(&mut self, entry: &EntryExpr) -> Result<(), ConditionError> {
        match entry {
            EntryExpr::StructField(field) => self.expr(&field.value),
            EntryExpr::MapEntry(entry) => {
                self.expr(&entry.key)?;
                self.expr(&entry.value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn invoice(amount: i64, status: &str) -> ConditionInputs {
        ConditionInputs {
            subject: json!({"user_id": "user_alice", "properties": {"role": "admin"}}),
            resource: json!({"type": "invoice", "status": status, "properties": {"amount": amount}}),
            action: json!({"name": "approve"}),
            context: json!({"ip": "192.0.2.1"}),
            now: 1_800_000_000,
        }
    }

    #[test]
    fn a_typical_condition_compiles_once_and_decides_on_its_inputs() {
        let condition = Condition::compile(
            "resource.properties.amount <= 10000 && resource.status != 'archived'",
        )
        .unwrap();
        assert_eq!(condition.reads(), ["resource"]);
        assert_eq!(
            condition.evaluate(&invoice(9_999, "active")),
            Evaluation::Met
        );
        assert_eq!(
            condition.evaluate(&invoice(10_000, "active")),
            Evaluation::Met
        );
        assert_eq!(
            condition.evaluate(&invoice(10_001, "active")),
            Evaluation::NotMet
        );
        assert_eq!(
            condition.evaluate(&invoice(5, "archived")),
            Evaluation::NotMet
        );
        let every = Condition::compile(
            "subject.properties.role == 'admin' && action.name == 'approve' && \
             context.ip.startsWith('192.0.2.') && now > 0",
        )
        .unwrap();
        assert_eq!(every.reads(), ["subject", "action", "context", "now"]);
        assert_eq!(every.evaluate(&invoice(1, "active")), Evaluation::Met);
    }

    #[test]
    fn a_condition_names_the_paths_it_reads_and_their_values() {
        let condition = Condition::compile(
            "resource.properties.amount <= 10000 && resource.status != 'archived' && \
             resource.properties.tags.exists(t, t.size() > 0 && t != subject.user_id) && \
             now > 0 && has(context.ip) && resource.properties.amount > 0",
        )
        .unwrap();
        assert_eq!(
            condition.paths(),
            [
                "resource.properties.amount",
                "resource.status",
                "resource.properties.tags",
                "subject.user_id",
                "now",
                "context.ip",
            ]
        );
        assert!(condition.needs_request(), "it reads the context");
        for (source, needs) in [
            (
                "resource.properties.amount <= 10 && resource.status == 'active'",
                false,
            ),
            (
                "subject.user_id == 'x' && now > 0 && subject.username != ''",
                false,
            ),
            ("subject.properties.role == 'admin'", true),
            ("action.properties.reason != ''", true),
            ("action.name == 'approve'", false),
            ("size(subject) > 0", true),
            ("context.ip == '192.0.2.1'", true),
        ] {
            let condition = Condition::compile(source).unwrap();
            assert_eq!(condition.needs_request(), needs, "{source}");
        }
        let read = condition.read(&invoice(12, "active"));
        assert_eq!(
            read[0],
            ("resource.properties.amount".into(), Some(json!(12)))
        );
        assert_eq!(read[2], ("resource.properties.tags".into(), None));
        assert_eq!(read[4], ("now".into(), Some(json!(1_800_000_000))));
        // A stored source this build refuses never holds, and says why.
        let refused = Condition::stored("user.role == 'admin'");
        assert_eq!(refused.source(), "user.role == 'admin'");
        let Evaluation::Failed(why) = refused.evaluate(&invoice(1, "active")) else {
            panic!("a refused condition must not hold");
        };
        assert!(why.contains("refused") && why.contains("`user`"), "{why}");
    }

    #[test]
    fn a_macro_binds_its_own_variables_and_may_not_nest() {
        let tags = Condition::compile("resource.properties.tags.exists(t, t == 'urgent')").unwrap();
        let mut inputs = invoice(1, "active");
        inputs.resource = json!({"properties": {"tags": ["late", "urgent"]}});
        assert_eq!(tags.evaluate(&inputs), Evaluation::Met);
        let nested = Condition::compile(
            "resource.properties.tags.all(a, resource.properties.tags.exists(b, a == b))",
        )
        .unwrap_err();
        assert!(nested.message.contains("inside another"), "{nested}");
        // At the inner macro's call.
        assert_eq!((nested.line, nested.column), (1, 64), "{nested}");
    }

    #[test]
    fn what_cannot_be_a_condition_is_refused_with_its_position() {
        for (source, line, column, says) in [
            ("", 1, 1, "blank"),
            ("resource.properties.amount <=", 1, 30, "mismatched input"),
            (
                "resource.amount > 1 &&\n  user.role == 'admin'",
                2,
                3,
                "`user` is not",
            ),
            ("1 + 2", 1, 3, "not a boolean"),
            ("'yes'", 1, 1, "not a boolean"),
            ("[true]", 1, 1, "not a boolean"),
        ] {
            let err = Condition::compile(source).unwrap_err();
            assert!(err.message.contains(says), "{source:?}: {err}");
            assert_eq!((err.line, err.column), (line, column), "{source:?}: {err}");
        }
        let long = format!("now > 0 {}", "&& now > 0 ".repeat(100));
        assert!(
            Condition::compile(&long)
                .unwrap_err()
                .message
                .contains("at most")
        );
        let deep = format!("{}true{}", "(".repeat(40), ")".repeat(40));
        let err = Condition::compile(&deep).unwrap_err();
        assert_eq!((err.line, err.column), (1, 33), "{err}");
        // Brackets inside a string are text.
        let quoted = format!("context.note == '{}'", "(".repeat(40));
        assert!(Condition::compile(&quoted).is_ok());
    }

    #[test]
    fn an_evaluation_that_cannot_yield_a_boolean_fails_and_says_why() {
        let missing = Condition::compile("resource.properties.currency == 'EUR'").unwrap();
        let Evaluation::Failed(why) = missing.evaluate(&invoice(1, "active")) else {
            panic!("a missing attribute is not a verdict");
        };
        assert!(why.contains("currency"), "{why}");
        let mistyped = Condition::compile("resource.properties.amount > 'ten'").unwrap();
        assert!(matches!(
            mistyped.evaluate(&invoice(1, "active")),
            Evaluation::Failed(_)
        ));
        let not_boolean = Condition::compile("resource.properties.amount").unwrap();
        assert!(matches!(
            not_boolean.evaluate(&invoice(1, "active")),
            Evaluation::Failed(_)
        ));
    }

    /// A leaf of a generated condition: an input path or a literal of every kind.
    fn leaf() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "resource.properties.amount",
            "resource.properties.ratio",
            "resource.properties.owner",
            "resource.properties.tags",
            "resource.properties.flag",
            "resource.properties.missing",
            "resource.properties['amount']",
            "resource.properties",
            "resource.status",
            "subject.user_id",
            "subject.properties.level",
            "action.name",
            "context.ip",
            "context.nothing",
            "now",
            "1",
            "-3",
            "10000",
            "2u",
            "0u",
            "1.5",
            "-0.5",
            "'active'",
            "'192.0.2.'",
            "'urgent'",
            "''",
            "true",
            "false",
            "null",
            "['urgent', 'late']",
            "[1, 2u, 3.0]",
            "[]",
        ])
        .prop_map(str::to_owned)
    }

    /// A generated condition over the leaves: the operations the tree lowers, nested.
    fn expression() -> impl Strategy<Value = String> {
        let comparison = (
            leaf(),
            prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">=", "in"]),
            leaf(),
        )
            .prop_map(|(a, op, b)| format!("{a} {op} {b}"));
        let call = (
            leaf(),
            prop::sample::select(vec!["startsWith", "endsWith", "contains"]),
            leaf(),
        )
            .prop_map(|(a, f, b)| format!("{a}.{f}({b})"));
        let tests = prop_oneof![
            comparison,
            call,
            leaf().prop_map(|a| format!("size({a}) > 1")),
            leaf().prop_map(|a| format!("{a}.size() == 0")),
            prop::sample::select(vec!["amount", "flag", "missing", "tags"])
                .prop_map(|f| format!("has(resource.properties.{f})")),
            leaf(),
        ];
        tests.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|a| format!("!({a})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) || ({b})")),
                (inner.clone(), inner.clone(), inner)
                    .prop_map(|(a, b, c)| format!("({a}) ? ({b}) : ({c})")),
            ]
        })
    }

    /// Inputs whose attributes take every kind of value, or are missing.
    fn inputs() -> impl Strategy<Value = ConditionInputs> {
        let value = prop_oneof![
            (-20_000i64..20_000).prop_map(serde_json::Value::from),
            (0u64..3).prop_map(serde_json::Value::from),
            (-2.0f64..2.0).prop_map(serde_json::Value::from),
            prop::sample::select(vec!["active", "urgent", "192.0.2.7", ""])
                .prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            Just(json!(["urgent", "late"])),
            Just(json!({"amount": 1})),
        ];
        let slot = prop::option::of(value);
        (slot.clone(), slot.clone(), slot.clone(), slot.clone(), slot.clone(), slot, prop::sample::select(vec!["active", "archived"]))
            .prop_map(|(amount, ratio, owner, tags, flag, level, status)| {
                let mut properties = serde_json::Map::new();
                for (key, value) in [("amount", amount), ("ratio", ratio), ("owner", owner), ("tags", tags), ("flag", flag)] {
                    if let Some(value) = value {
                        properties.insert(key.to_owned(), value);
                    }
                }
                let mut subject = json!({"user_id": "user_alice", "properties": {}});
                if let Some(level) = level {
                    subject["properties"]["level"] = level;
                }
                ConditionInputs {
                    subject,
                    resource: json!({"type": "invoice", "status": status, "properties": properties}),
                    action: json!({"name": "approve", "properties": {}}),
                    context: json!({"ip": "192.0.2.7"}),
                    now: 1_800_000_000,
                }
            })
    }

    /// The verdict's kind: a failure's reason is worded differently by the two evaluators.
    fn kind(evaluation: &Evaluation) -> &'static str {
        match evaluation {
            Evaluation::Met => "met",
            Evaluation::NotMet => "not met",
            Evaluation::Failed(_) => "failed",
        }
    }

    #[test]
    fn the_typical_conditions_are_lowered_and_the_rest_interpreted() {
        for source in [
            "resource.properties.amount <= 10000 && resource.status != 'archived'",
            "subject.properties.role == 'admin' || context.ip.startsWith('192.0.2.')",
            "has(resource.properties.tags) && 'urgent' in resource.properties.tags",
            "resource.properties['amount'] > 0 ? size(resource.properties.tags) > 1 : false",
        ] {
            assert!(Condition::compile(source).unwrap().is_lowered(), "{source}");
        }
        for source in [
            "resource.properties.amount + 1 > 2",
            "resource.properties.tags.exists(t, t == 'urgent')",
            "int(resource.properties.amount) > 2",
        ] {
            assert!(
                !Condition::compile(source).unwrap().is_lowered(),
                "{source}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// The lowered tree decides every generated condition on every generated input as
        /// `cel`'s interpreter does.
        #[test]
        fn the_tree_decides_every_condition_as_the_interpreter_does(source in expression(), inputs in inputs()) {
            let Ok(condition) = Condition::compile(&source) else {
                return Ok(());
            };
            prop_assume!(condition.is_lowered());
            let lowered = condition.evaluate(&inputs);
            let interpreted = condition.interpret(&inputs);
            prop_assert_eq!(kind(&lowered), kind(&interpreted), "{} on {:?}: {:?} vs {:?}", source, inputs, lowered, interpreted);
        }
    }

    proptest! {
        /// A threshold condition decides exactly as the comparison computed without CEL.
        #[test]
        fn a_threshold_decides_as_the_comparison(amount in -1_000_000i64..1_000_000, limit in -1_000_000i64..1_000_000, archived: bool) {
            let condition = Condition::compile(&format!(
                "resource.properties.amount <= {limit} && resource.status != 'archived'"
            )).unwrap();
            let status = if archived { "archived" } else { "active" };
            let expected = if amount <= limit && !archived { Evaluation::Met } else { Evaluation::NotMet };
            prop_assert_eq!(condition.evaluate(&invoice(amount, status)), expected);
        }
    }
}
