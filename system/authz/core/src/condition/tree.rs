//! A condition lowered from CEL's parsed syntax into a tree of the operations conditions mostly
//! use, evaluated straight on the JSON inputs: no conversion of the inputs, no interpreter
//! dispatch, no allocation on the common paths.
//!
//! What it lowers: literals (but bytes), the five inputs, field selection, `has()`, `!`, `&&`,
//! `||`, `? :`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `in` (a list or a map), `size`, `startsWith`,
//! `endsWith`, `contains`, `[…]` with a string literal on a map, and list literals of literals.
//! Anything else (arithmetic, macros, other functions) leaves the whole condition to `cel`'s
//! interpreter. The semantics are `cel`'s own, operator by operator (numbers of the three kinds
//! compare and equal across kinds; `&&` and `||` absorb an error the other side decides; a
//! missing field is an error, `has()` of it is false), and the property test
//! `the_tree_decides_every_condition_as_the_interpreter_does` holds the two to the same verdict
//! on generated conditions and inputs.

use std::cmp::Ordering;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use serde_json::{Map, Value as Json};

use super::ConditionInputs;

/// A literal.
#[derive(Debug, Clone)]
pub(super) enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(String),
}

/// One of the five inputs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Root {
    Subject,
    Resource,
    Action,
    Context,
    Now,
}

/// An ordering test.
#[derive(Debug, Clone, Copy)]
pub(super) enum Order {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// A string test.
#[derive(Debug, Clone, Copy)]
pub(super) enum Text {
    StartsWith,
    EndsWith,
    Contains,
}

/// A lowered condition.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Const(Lit),
    List(Vec<Lit>),
    Input(Root),
    Field(Box<Node>, String),
    Has(Box<Node>, String),
    Not(Box<Node>),
    /// `&&` (`false`: the value that decides alone) or `||` (`true`).
    Logic(bool, Box<Node>, Box<Node>),
    If(Box<Node>, Box<Node>, Box<Node>),
    Equal(bool, Box<Node>, Box<Node>),
    Order(Order, Box<Node>, Box<Node>),
    In(Box<Node>, Box<Node>),
    Size(Box<Node>),
    Text(Text, Box<Node>, Box<Node>),
}

/// A value during evaluation: borrowed from the inputs or the tree.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(&'a str),
    Json(&'a [Json]),
    Lits(&'a [Lit]),
    Map(&'a Map<String, Json>),
}

/// Why an evaluation has no value (the message is built only when it is reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    NoSuchKey,
    NoSuchOverload(&'static str),
    NotBoolean,
}

impl Failure {
    pub(super) fn describe(self, at: Option<&str>) -> String {
        match self {
            Self::NoSuchKey => format!("no such key: {}", at.unwrap_or("?")),
            Self::NoSuchOverload(op) => format!("no such overload for {op}"),
            Self::NotBoolean => "a value that is not a boolean".to_owned(),
        }
    }
}

type Res<'a> = Result<Val<'a>, (Failure, Option<&'a str>)>;

fn fail<'a>(failure: Failure) -> Res<'a> {
    Err((failure, None))
}

/// The tree of `expr`, or `None` when it uses something the tree does not lower.
pub(super) fn lower(expr: &IdedExpr) -> Option<Node> {
    Some(match &expr.expr {
        Expr::Literal(lit) => Node::Const(literal(lit)?),
        Expr::Ident(name) => Node::Input(match name.as_str() {
            "subject" => Root::Subject,
            "resource" => Root::Resource,
            "action" => Root::Action,
            "context" => Root::Context,
            "now" => Root::Now,
            _ => return None,
        }),
        Expr::Select(select) => {
            let operand = Box::new(lower(&select.operand)?);
            if select.test {
                Node::Has(operand, select.field.clone())
            } else {
                Node::Field(operand, select.field.clone())
            }
        }
        Expr::List(list) if list.optional_indices.is_empty() => Node::List(
            list.elements
                .iter()
                .map(|e| match &e.expr {
                    Expr::Literal(lit) => literal(lit),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        Expr::Call(call) => {
            let arg = |i: usize| call.args.get(i).and_then(lower).map(Box::new);
            match (call.func_name.as_str(), &call.target, call.args.len()) {
                ("_&&_", None, 2) => Node::Logic(false, arg(0)?, arg(1)?),
                ("_||_", None, 2) => Node::Logic(true, arg(0)?, arg(1)?),
                ("!_", None, 1) => Node::Not(arg(0)?),
                ("_?_:_", None, 3) => Node::If(arg(0)?, arg(1)?, arg(2)?),
                ("_==_", None, 2) => Node::Equal(true, arg(0)?, arg(1)?),
                ("_!=_", None, 2) => Node::Equal(false, arg(0)?, arg(1)?),
                ("_<_", None, 2) => Node::Order(Order::Less, arg(0)?, arg(1)?),
                ("_<=_", None, 2) => Node::Order(Order::LessOrEqual, arg(0)?, arg(1)?),
                ("_>_", None, 2) => Node::Order(Order::Greater, arg(0)?, arg(1)?),
                ("_>=_", None, 2) => Node::Order(Order::GreaterOrEqual, arg(0)?, arg(1)?),
                ("@in", None, 2) => Node::In(arg(0)?, arg(1)?),
                ("size", None, 1) => Node::Size(arg(0)?),
                ("size", Some(target), 0) => Node::Size(Box::new(lower(target)?)),
                ("_[_]", None, 2) => match &call.args[1].expr {
                    Expr::Literal(LiteralValue::String(key)) => {
                        Node::Field(arg(0)?, key.inner().to_owned())
                    }
                    _ => return None,
                },
                (name, Some(target), 1) => {
                    let test = match name {
                        "startsWith" => Text::StartsWith,
                        "endsWith" => Text::EndsWith,
                        "contains" => Text::Contains,
                        _ => return None,
                    };
                    Node::Text(test, Box::new(lower(target)?), arg(0)?)
                }
                _ => return None,
            }
        }
        _ => return None,
    })
}

fn literal(lit: &LiteralValue) -> Option<Lit> {
    Some(match lit {
        LiteralValue::Null => Lit::Null,
        LiteralValue::Boolean(b) => Lit::Bool(*b.inner()),
        LiteralValue::Int(i) => Lit::Int(*i.inner()),
        LiteralValue::UInt(u) => Lit::Uint(*u.inner()),
        LiteralValue::Double(d) => Lit::Double(*d.inner()),
        LiteralValue::String(s) => Lit::Str(s.inner().to_owned()),
        LiteralValue::Bytes(_) => return None,
    })
}

fn of_lit(lit: &Lit) -> Val<'_> {
    match lit {
        Lit::Null => Val::Null,
        Lit::Bool(b) => Val::Bool(*b),
        Lit::Int(i) => Val::Int(*i),
        Lit::Uint(u) => Val::Uint(*u),
        Lit::Double(d) => Val::Double(*d),
        Lit::Str(s) => Val::Str(s),
    }
}

/// A JSON value as `cel` converts one: a positive integer is a `uint`, a negative one an `int`.
fn of_json(json: &Json) -> Val<'_> {
    match json {
        Json::Null => Val::Null,
        Json::Bool(b) => Val::Bool(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Val::Uint(u),
            (None, Some(i)) => Val::Int(i),
            _ => Val::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Val::Str(s),
        Json::Array(items) => Val::Json(items),
        Json::Object(map) => Val::Map(map),
    }
}

/// The verdict of `node` on `inputs`: `Ok(bool)`, or why there is none.
pub(super) fn decide(node: &Node, inputs: &ConditionInputs) -> Result<bool, String> {
    match eval(node, inputs) {
        Ok(Val::Bool(b)) => Ok(b),
        Ok(_) => Err(Failure::NotBoolean.describe(None)),
        Err((failure, at)) => Err(failure.describe(at)),
    }
}

fn boolean<'a>(value: Res<'a>) -> Result<bool, (Failure, Option<&'a str>)> {
    match value? {
        Val::Bool(b) => Ok(b),
        _ => Err((Failure::NotBoolean, None)),
    }
}

fn eval<'a>(node: &'a Node, inputs: &'a ConditionInputs) -> Res<'a> {
    match node {
        Node::Const(lit) => Ok(of_lit(lit)),
        Node::List(items) => Ok(Val::Lits(items)),
        Node::Input(root) => Ok(match root {
            Root::Subject => of_json(&inputs.subject),
            Root::Resource => of_json(&inputs.resource),
            Root::Action => of_json(&inputs.action),
            Root::Context => of_json(&inputs.context),
            Root::Now => Val::Int(inputs.now),
        }),
        Node::Field(operand, field) => match eval(operand, inputs)? {
            Val::Map(map) => map
                .get(field.as_str())
                .map(of_json)
                .ok_or((Failure::NoSuchKey, Some(field.as_str()))),
            _ => fail(Failure::NoSuchOverload("_._")),
        },
        Node::Has(operand, field) => match eval(operand, inputs)? {
            Val::Map(map) => Ok(Val::Bool(map.contains_key(field.as_str()))),
            _ => fail(Failure::NoSuchOverload("has")),
        },
        Node::Not(operand) => match eval(operand, inputs)? {
            Val::Bool(b) => Ok(Val::Bool(!b)),
            _ => fail(Failure::NoSuchOverload("!_")),
        },
        // `cel`'s: the left side alone decides when it is the deciding value; else the right
        // side's error is the answer; a deciding right side absorbs the left side's error.
        Node::Logic(decides, left, right) => {
            let left = boolean(eval(left, inputs));
            if left == Ok(*decides) {
                return Ok(Val::Bool(*decides));
            }
            match (left, eval(right, inputs)?) {
                (Ok(_), Val::Bool(r)) => Ok(Val::Bool(r)),
                (Err(_), Val::Bool(r)) if r == *decides => Ok(Val::Bool(r)),
                (Err(e), _) => Err(e),
                _ => fail(Failure::NoSuchOverload(if *decides {
                    "_||_"
                } else {
                    "_&&_"
                })),
            }
        }
        Node::If(test, then, otherwise) => {
            if boolean(eval(test, inputs))? {
                eval(then, inputs)
            } else {
                eval(otherwise, inputs)
            }
        }
        Node::Equal(equal, left, right) => {
            let left = eval(left, inputs)?;
            let right = eval(right, inputs)?;
            Ok(Val::Bool(same(left, right) == *equal))
        }
        Node::Order(order, left, right) => {
            let left = eval(left, inputs)?;
            let right = eval(right, inputs)?;
            let ordering = compare(left, right).ok_or((Failure::NoSuchOverload("_<_"), None))?;
            Ok(Val::Bool(match order {
                Order::Less => ordering == Ordering::Less,
                Order::LessOrEqual => ordering != Ordering::Greater,
                Order::Greater => ordering == Ordering::Greater,
                Order::GreaterOrEqual => ordering != Ordering::Less,
            }))
        }
        Node::In(element, container) => {
            let element = eval(element, inputs)?;
            match eval(container, inputs)? {
                Val::Json(items) => Ok(Val::Bool(
                    items.iter().any(|item| same(element, of_json(item))),
                )),
                Val::Lits(items) => Ok(Val::Bool(
                    items.iter().any(|item| same(element, of_lit(item))),
                )),
                Val::Map(map) => match element {
                    Val::Str(key) => Ok(Val::Bool(map.contains_key(key))),
                    Val::Int(_) | Val::Uint(_) | Val::Bool(_) | Val::Double(_) => {
                        Ok(Val::Bool(false))
                    }
                    _ => fail(Failure::NoSuchOverload("@in")),
                },
                _ => fail(Failure::NoSuchOverload("@in")),
            }
        }
        Node::Size(operand) => {
            let size = match eval(operand, inputs)? {
                Val::Str(s) => s.chars().count(),
                Val::Json(items) => items.len(),
                Val::Lits(items) => items.len(),
                Val::Map(map) => map.len(),
                _ => return fail(Failure::NoSuchOverload("size")),
            };
            Ok(Val::Int(i64::try_from(size).unwrap_or(i64::MAX)))
        }
        Node::Text(test, target, argument) => {
            let target = eval(target, inputs)?;
            let argument = eval(argument, inputs)?;
            match (target, argument) {
                (Val::Str(s), Val::Str(a)) => Ok(Val::Bool(match test {
                    Text::StartsWith => s.starts_with(a),
                    Text::EndsWith => s.ends_with(a),
                    Text::Contains => s.contains(a),
                })),
                _ => fail(Failure::NoSuchOverload("string test")),
            }
        }
    }
}

/// `cel`'s equality: numbers across kinds by value, lists element by element, maps key by key,
/// other kinds only with their own.
fn same(a: Val<'_>, b: Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Json(_) | Val::Lits(_), Val::Json(_) | Val::Lits(_)) => {
            let (xs, ys) = (items(a), items(b));
            xs.len() == ys.len() && xs.into_iter().zip(ys).all(|(x, y)| same(x, y))
        }
        (Val::Map(x), Val::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same(of_json(v), of_json(w))))
        }
        _ => number_order(a, b) == Some(Ordering::Equal),
    }
}

fn items(list: Val<'_>) -> Vec<Val<'_>> {
    match list {
        Val::Json(items) => items.iter().map(of_json).collect(),
        Val::Lits(items) => items.iter().map(of_lit).collect(),
        _ => Vec::new(),
    }
}

/// `cel`'s ordering: numbers across kinds, strings, booleans; nothing else compares.
fn compare(a: Val<'_>, b: Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(&y)),
        _ => number_order(a, b),
    }
}

fn number_order(a: Val<'_>, b: Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(&y)),
        (Val::Uint(x), Val::Uint(y)) => Some(x.cmp(&y)),
        (Val::Int(x), Val::Uint(y)) => Some(i128::from(x).cmp(&i128::from(y))),
        (Val::Uint(x), Val::Int(y)) => Some(i128::from(x).cmp(&i128::from(y))),
        (Val::Double(x), Val::Double(y)) => x.partial_cmp(&y),
        (Val::Int(x), Val::Double(y)) => (x as f64).partial_cmp(&y),
        (Val::Uint(x), Val::Double(y)) => (x as f64).partial_cmp(&y),
        (Val::Double(x), Val::Int(y)) => x.partial_cmp(&(y as f64)),
        (Val::Double(x), Val::Uint(y)) => x.partial_cmp(&(y as f64)),
        _ => None,
    }
}
