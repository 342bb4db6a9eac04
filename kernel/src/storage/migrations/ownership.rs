//! Migration ownership: which namespace a file belongs to, and whether each of its statements only
//! touches tables (and their indexes, triggers and trigger functions) prefixed with that namespace.
//!
//! The check reads SQL, it does not parse it fully: statements are split on `;` outside quotes,
//! comments, dollar-quoted bodies and SQLite trigger `BEGIN … END` blocks, then classified by their
//! leading keywords. Anything it does not recognise is refused.

/// One statement of a migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement's text, without the terminating `;`.
    pub text: String,
    /// The 1-based line its first token is on.
    pub line: usize,
}

/// A statement (or a file) that breaks the ownership rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {reason}", match (line, statement) {
    (Some(line), Some(statement)) => format!(" line {line} (`{statement}`)"),
    _ => String::new(),
})]
pub struct OwnershipViolation {
    /// The migration file.
    pub file: String,
    /// The statement's line, when a statement is at fault.
    pub line: Option<usize>,
    /// The start of the offending statement.
    pub statement: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// The namespace `stem` (the file name after `<version>_`, without `.sql`) belongs to: the longest
/// owned namespace `ns` with `stem` starting with `ns_`.
pub fn namespace_of<'a>(stem: &str, owned: &[&'a str]) -> Option<&'a str> {
    owned
        .iter()
        .copied()
        .filter(|ns| {
            stem.len() > ns.len() + 1 && stem.starts_with(ns) && stem[ns.len()..].starts_with('_')
        })
        .max_by_key(|ns| ns.len())
}

/// Checks every statement of `sql` against `namespace`.
pub fn check_statements(file: &str, namespace: &str, sql: &str) -> Vec<OwnershipViolation> {
    split_statements(sql)
        .into_iter()
        .filter_map(|statement| {
            check_statement(namespace, &statement.text)
                .err()
                .map(|reason| OwnershipViolation {
                    file: file.to_owned(),
                    line: Some(statement.line),
                    statement: Some(snippet(&statement.text)),
                    reason,
                })
        })
        .collect()
}

fn snippet(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 80 {
        format!("{}…", flat.chars().take(80).collect::<String>())
    } else {
        flat
    }
}

/// A lexical token: a word (keyword or identifier, unquoted), a quoted string, or punctuation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Str,
    Punct(char),
}

/// Splits `sql` into statements; comment-only fragments are dropped.
pub fn split_statements(sql: &str) -> Vec<Statement> {
    let chars: Vec<char> = sql.chars().collect();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut line = 1;
    let mut first_token_line: Option<usize> = None;
    let mut words: Vec<String> = Vec::new();
    let mut depth: i32 = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                if chars[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 2;
            continue;
        }
        first_token_line.get_or_insert(line);
        if c == '\'' || c == '"' || c == '`' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\n' {
                    line += 1;
                }
                if chars[i] == c {
                    if chars.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '$' {
            // A dollar quote: `$$` or `$tag$`.
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            if chars.get(j) == Some(&'$') {
                let tag: String = chars[i..=j].iter().collect();
                let tag_chars: Vec<char> = tag.chars().collect();
                i = j + 1;
                while i < chars.len() && !chars[i..].starts_with(&tag_chars) {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i += tag_chars.len();
                continue;
            }
        }
        if c.is_alphanumeric() || c == '_' {
            let begin = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[begin..i]
                .iter()
                .collect::<String>()
                .to_ascii_uppercase();
            if is_trigger_statement(&words) {
                match word.as_str() {
                    "BEGIN" | "CASE" => depth += 1,
                    "END" => depth -= 1,
                    _ => {}
                }
            }
            words.push(word);
            continue;
        }
        if c == ';' && depth <= 0 {
            let text: String = chars[start..i].iter().collect();
            if let Some(line) = first_token_line.take() {
                statements.push(Statement {
                    text: text.trim().to_owned(),
                    line,
                });
            }
            words.clear();
            depth = 0;
            start = i + 1;
        }
        i += 1;
    }
    let rest: String = chars[start.min(chars.len())..].iter().collect();
    if let Some(line) = first_token_line {
        statements.push(Statement {
            text: rest.trim().to_owned(),
            line,
        });
    }
    statements
}

fn is_trigger_statement(words: &[String]) -> bool {
    let mut it = words.iter().map(String::as_str);
    if it.next() != Some("CREATE") {
        return false;
    }
    it.filter(|w| !matches!(*w, "TEMP" | "TEMPORARY" | "OR" | "REPLACE"))
        .take(1)
        .any(|w| w == "TRIGGER")
}

fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '"' || c == '`' {
            // A quoted identifier.
            let begin = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += 1;
            }
            tokens.push(Token::Word(
                chars[begin..i.min(chars.len())]
                    .iter()
                    .collect::<String>()
                    .to_lowercase(),
            ));
            i += 1;
        } else if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            tokens.push(Token::Str);
        } else if c.is_alphanumeric() || c == '_' {
            let begin = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            tokens.push(Token::Word(
                chars[begin..i].iter().collect::<String>().to_lowercase(),
            ));
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    tokens
}

/// A cursor over a statement's tokens.
struct Cursor {
    tokens: Vec<Token>,
    at: usize,
}

impl Cursor {
    fn peek_word(&self) -> Option<&str> {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }

    /// Consumes `word` if it is next.
    fn eat(&mut self, word: &str) -> bool {
        if self.peek_word() == Some(word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Consumes the words of `phrase` if they are all next.
    fn eat_all(&mut self, phrase: &[&str]) -> bool {
        let save = self.at;
        if phrase.iter().all(|w| self.eat(w)) {
            true
        } else {
            self.at = save;
            false
        }
    }

    /// Consumes an object name; refuses schema-qualified names.
    fn name(&mut self) -> Result<String, String> {
        let Some(Token::Word(name)) = self.tokens.get(self.at).cloned() else {
            return Err("expected an object name".to_owned());
        };
        self.at += 1;
        if self.tokens.get(self.at) == Some(&Token::Punct('.')) {
            return Err(format!("schema-qualified name `{name}.…` is not allowed"));
        }
        Ok(name)
    }

    /// Skips ahead to just after the next top-level `on` word.
    fn skip_past_on(&mut self) -> bool {
        while self.at < self.tokens.len() {
            let found = self.peek_word() == Some("on");
            self.at += 1;
            if found {
                return true;
            }
        }
        false
    }

    /// The names following `rename to`, anywhere in the rest of the statement.
    fn renamed_to(&self) -> Vec<String> {
        let mut names = Vec::new();
        for window in self.tokens[self.at..].windows(3) {
            if let [Token::Word(a), Token::Word(b), Token::Word(name)] = window
                && a == "rename"
                && b == "to"
            {
                names.push(name.clone());
            }
        }
        names
    }
}

/// Checks one statement; `Err` carries the reason it is refused.
pub fn check_statement(namespace: &str, text: &str) -> Result<(), String> {
    let mut cur = Cursor {
        tokens: tokenize(text),
        at: 0,
    };
    let owned = |kind: &str, name: &str| -> Result<(), String> {
        if name.len() > namespace.len() + 1
            && name.starts_with(namespace)
            && name[namespace.len()..].starts_with('_')
        {
            Ok(())
        } else {
            Err(format!(
                "{kind} `{name}` is outside namespace `{namespace}` (names must start with `{namespace}_`)"
            ))
        }
    };
    let unsupported = || {
        Err(format!(
            "only CREATE/ALTER/DROP of tables, indexes, triggers and trigger functions (and INSERT/UPDATE/DELETE) on `{namespace}_*` objects are allowed"
        ))
    };

    if cur.eat("create") {
        cur.eat_all(&["or", "replace"]);
        let _ = cur.eat("temp") || cur.eat("temporary") || cur.eat("unlogged");
        if cur.eat("table") {
            cur.eat_all(&["if", "not", "exists"]);
            let name = cur.name()?;
            return owned("table", &name);
        }
        let _ = cur.eat("unique");
        if cur.eat("index") {
            cur.eat("concurrently");
            cur.eat_all(&["if", "not", "exists"]);
            let name = cur.name()?;
            owned("index", &name)?;
            if !cur.skip_past_on() {
                return Err("index without `ON <table>`".to_owned());
            }
            cur.eat("only");
            let table = cur.name()?;
            return owned("table", &table);
        }
        if cur.eat("trigger") {
            cur.eat_all(&["if", "not", "exists"]);
            let name = cur.name()?;
            owned("trigger", &name)?;
            if !cur.skip_past_on() {
                return Err("trigger without `ON <table>`".to_owned());
            }
            let table = cur.name()?;
            return owned("table", &table);
        }
        if cur.eat("function") {
            let name = cur.name()?;
            return owned("function", &name);
        }
        return unsupported();
    }
    if cur.eat("alter") {
        let kind = if cur.eat("table") {
            "table"
        } else if cur.eat("index") {
            "index"
        } else {
            return unsupported();
        };
        cur.eat_all(&["if", "exists"]);
        cur.eat("only");
        let name = cur.name()?;
        owned(kind, &name)?;
        for renamed in cur.renamed_to() {
            owned(kind, &renamed)?;
        }
        return Ok(());
    }
    if cur.eat("drop") {
        let kind = if cur.eat("table") {
            "table"
        } else if cur.eat("index") {
            "index"
        } else if cur.eat("trigger") {
            "trigger"
        } else if cur.eat("function") {
            "function"
        } else {
            return unsupported();
        };
        cur.eat("concurrently");
        cur.eat_all(&["if", "exists"]);
        let name = cur.name()?;
        owned(kind, &name)?;
        if kind == "trigger" && cur.skip_past_on() {
            let table = cur.name()?;
            owned("table", &table)?;
        }
        // `DROP TABLE a, b`: every listed name.
        if kind != "trigger" && kind != "function" {
            while cur.tokens.get(cur.at) == Some(&Token::Punct(',')) {
                cur.at += 1;
                let name = cur.name()?;
                owned(kind, &name)?;
            }
        }
        return Ok(());
    }
    if cur.eat_all(&["insert", "into"]) || cur.eat("update") || cur.eat_all(&["delete", "from"]) {
        cur.eat("only");
        let name = cur.name()?;
        return owned("table", &name);
    }
    unsupported()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_around_quotes_comments_dollar_bodies_and_trigger_blocks() {
        let sql = "-- header; not a statement\nCREATE TABLE a_x (v TEXT DEFAULT ';');\n\
                   CREATE TRIGGER a_x_no_update BEFORE UPDATE ON a_x\nBEGIN\n    SELECT RAISE(ABORT, 'no; never');\n    SELECT CASE WHEN 1 THEN 2 END;\nEND;\n\
                   CREATE FUNCTION a_f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'x'; END; $$;\n\
                   /* trailing ; comment */";
        let statements = split_statements(sql);
        assert_eq!(statements.len(), 3, "{statements:#?}");
        assert_eq!(statements[0].line, 2);
        assert!(
            statements[1].text.starts_with("CREATE TRIGGER") && statements[1].text.ends_with("END")
        );
        assert_eq!(statements[1].line, 3);
        assert!(statements[2].text.ends_with("$$"));
    }

    #[test]
    fn accepts_own_namespace_objects() {
        for ok in [
            "CREATE TABLE sys_audit_logs (id TEXT NOT NULL REFERENCES sys_identity_users (id))",
            "CREATE TABLE IF NOT EXISTS \"sys_audit_logs\" (id TEXT)",
            "CREATE UNIQUE INDEX sys_audit_logs_seq ON sys_audit_logs (seq)",
            "CREATE INDEX IF NOT EXISTS sys_audit_x ON ONLY sys_audit_logs (a)",
            "ALTER TABLE sys_audit_logs ADD COLUMN note TEXT",
            "ALTER TABLE sys_audit_logs RENAME TO sys_audit_entries",
            "DROP TABLE IF EXISTS sys_audit_logs, sys_audit_other",
            "DROP INDEX sys_audit_logs_seq",
            "DROP TRIGGER IF EXISTS sys_audit_t ON sys_audit_logs",
            "CREATE TRIGGER sys_audit_t BEFORE DELETE ON sys_audit_logs FOR EACH ROW EXECUTE FUNCTION sys_audit_f()",
            "CREATE OR REPLACE FUNCTION sys_audit_f() RETURNS trigger AS $$ BEGIN END $$ LANGUAGE plpgsql",
            "INSERT INTO sys_audit_logs (id) VALUES ('x')",
        ] {
            assert_eq!(check_statement("sys_audit", ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_other_namespaces_and_other_statements() {
        for bad in [
            "CREATE TABLE sys_identity_users (id TEXT)",
            "CREATE TABLE sys_auditx (id TEXT)",
            "CREATE INDEX sys_audit_i ON sys_identity_users (id)",
            "CREATE INDEX sys_identity_i ON sys_audit_logs (id)",
            "ALTER TABLE sys_identity_users ADD COLUMN x TEXT",
            "ALTER TABLE sys_audit_logs RENAME TO users",
            "DROP TABLE sys_audit_logs, sys_identity_users",
            "CREATE TRIGGER sys_audit_t BEFORE DELETE ON sys_identity_users BEGIN SELECT 1; END",
            "CREATE TABLE public.sys_audit_logs (id TEXT)",
            "GRANT ALL ON sys_audit_logs TO PUBLIC",
            "CREATE VIEW sys_audit_v AS SELECT 1",
            "UPDATE sys_identity_users SET x = 1",
            "PRAGMA foreign_keys = OFF",
        ] {
            assert!(check_statement("sys_audit", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn violations_name_the_file_and_statement() {
        let sql = "CREATE TABLE sys_audit_a (id TEXT);\n\nCREATE TABLE sys_identity_b (id TEXT);\n";
        let violations = check_statements("0009_sys_audit_bad.sql", "sys_audit", sql);
        assert_eq!(violations.len(), 1);
        let message = violations[0].to_string();
        assert!(
            message.starts_with("0009_sys_audit_bad.sql line 3 (`CREATE TABLE sys_identity_b"),
            "{message}"
        );
        assert!(
            message.contains("outside namespace `sys_audit`"),
            "{message}"
        );
    }

    #[test]
    fn resolves_the_longest_owned_namespace() {
        let owned = ["sys", "sys_audit", "sys_identity"];
        assert_eq!(namespace_of("sys_audit_init", &owned), Some("sys_audit"));
        assert_eq!(namespace_of("sys_other_init", &owned), Some("sys"));
        assert_eq!(namespace_of("notes_init", &owned), None);
        assert_eq!(namespace_of("sys_audit", &owned), Some("sys"));
    }
}
