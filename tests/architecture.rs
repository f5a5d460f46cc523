//! The architecture, checked: which module may refer to which, and how large a
//! file or a function may grow.
//!
//! The layering reads from [`RULES`]: dependencies point one way, from the
//! edges (`http`, `graphql`, `delivery`, `bus`) towards `domain`, and `domain`
//! depends on nothing but the entities and its own ports. `src/lib.rs`,
//! `src/main.rs` and `src/state.rs` wire everything together and may import
//! anything.
//!
//! Sources are scanned as tokens (comments and string literals dropped), not
//! compiled: a reference counts whether it sits in a `use` (grouped forms
//! included), an inline path (`crate::bus::LiveAttempt`) or a test module.

use std::{
    collections::BTreeMap,
    fmt, fs,
    path::{Path, PathBuf},
};

/// What one part of `src/` must not refer to. `crate::x` names a top-level
/// module of the crate; a bare name (`sea_orm`, `entity`) names an external
/// crate.
struct Rule {
    /// The top-level module under `src/` the rule constrains.
    from: &'static str,
    /// Files under these paths are exempt from this rule.
    except_under: &'static [&'static str],
    must_not_use: &'static [&'static str],
    why: &'static str,
}

/// The layering. Read top to bottom: each line is an arrow that must not exist.
const RULES: &[Rule] = &[
    Rule {
        from: "domain",
        except_under: &[],
        must_not_use: &[
            "crate::bus",
            "crate::delivery",
            "crate::graphql",
            "crate::http",
            "crate::metrics",
            "crate::config",
            "crate::state",
        ],
        why: "domain is the core: the edges call it, it defines ports for what it needs from them",
    },
    Rule {
        from: "delivery",
        except_under: &[],
        must_not_use: &[
            "crate::graphql",
            "crate::http",
            "crate::bus",
            "crate::state",
        ],
        why: "delivery makes the calls and tells domain's notification port, not the API or the bus",
    },
    Rule {
        from: "bus",
        except_under: &[],
        must_not_use: &[
            "crate::graphql",
            "crate::http",
            "crate::delivery",
            "crate::state",
        ],
        why: "bus implements domain's port; it knows neither the worker nor the API",
    },
    Rule {
        from: "graphql",
        except_under: &[],
        must_not_use: &[
            "crate::http",
            "crate::bus",
            "crate::delivery",
            "crate::db",
            "sea_orm",
        ],
        why: "graphql resolves through domain; storage and the pipeline stay behind it",
    },
    Rule {
        from: "graphql",
        except_under: &["src/graphql/types/"],
        must_not_use: &["entity"],
        why: "only the view types in graphql/types map entity rows to the API",
    },
    Rule {
        from: "http",
        except_under: &[],
        must_not_use: &[
            "crate::db",
            "crate::delivery",
            "crate::bus",
            "sea_orm",
            "entity",
        ],
        why: "http is transport: it hands requests to graphql and domain",
    },
];

/// Files at the top of `src/` that wire the crate together and may import anything.
const WIRING_ROOT: &[&str] = &["lib", "main", "state"];

/// Source trees whose files and functions are held to the size limits.
const SIZED_TREES: &[&str] = &["src", "entity/src", "migration/src", "bench/src"];
const MAX_FILE_LINES: usize = 500;
/// Counted from the line of `fn` to the line of the closing brace; closures excluded.
const MAX_FN_LINES: usize = 80;

/// External crates whose use is tracked (besides the crate's own modules).
const TRACKED_CRATES: &[&str] = &["sea_orm", "entity"];

#[test]
fn modules_depend_one_way() {
    let mut violations = Vec::new();
    for file in rust_files(&workspace().join("src")) {
        let rel = relative(&file);
        let text = fs::read_to_string(&file).expect("read source file");
        violations.extend(layering_violations(&rel, &text));
    }
    assert_none("wrong-way imports", &violations);
}

#[test]
fn files_and_functions_stay_small() {
    let mut violations = Vec::new();
    for tree in SIZED_TREES {
        for file in rust_files(&workspace().join(tree)) {
            let rel = relative(&file);
            let text = fs::read_to_string(&file).expect("read source file");
            violations.extend(size_violations(&rel, &text));
        }
    }
    assert_none("size limits exceeded", &violations);
}

fn assert_none(what: &str, violations: &[Violation]) {
    if violations.is_empty() {
        return;
    }
    let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
    panic!("{} {what}:\n{}", violations.len(), list.join("\n"));
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    line: usize,
    message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

// ---------------------------------------------------------------------------
// Layering

/// Every reference in `text` (the file at `rel`, e.g. `src/domain/events.rs`)
/// that one of [`RULES`] forbids.
fn layering_violations(rel: &str, text: &str) -> Vec<Violation> {
    let Some(module_path) = module_path(rel) else {
        return Vec::new();
    };
    let Some(top) = module_path.first().cloned() else {
        return Vec::new();
    };
    // One report per line and target, however many names a grouped `use` lists.
    let mut found = BTreeMap::new();
    for reference in references(&module_path, text) {
        for rule in RULES.iter().filter(|rule| rule.from == top) {
            if rule.except_under.iter().any(|dir| rel.starts_with(dir)) {
                continue;
            }
            if rule.must_not_use.contains(&reference.target.as_str()) {
                let key = (reference.line, reference.target.clone());
                found.entry(key).or_insert_with(|| Violation {
                    file: rel.to_owned(),
                    line: reference.line,
                    message: format!(
                        "`{}` refers to {}; rule: {top} must not use {} ({})",
                        reference.path, reference.target, reference.target, rule.why
                    ),
                });
            }
        }
    }
    found.into_values().collect()
}

/// The module path a file under `src/` defines (`src/domain/publish/mod.rs` ->
/// `["domain", "publish"]`), or `None` for the wiring root.
fn module_path(rel: &str) -> Option<Vec<String>> {
    let inner = rel.strip_prefix("src/")?.strip_suffix(".rs")?;
    let mut parts: Vec<String> = inner.split('/').map(str::to_owned).collect();
    if parts.len() == 1 && WIRING_ROOT.contains(&parts[0].as_str()) {
        return None;
    }
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    Some(parts)
}

/// One reference to another crate module or a tracked external crate.
#[derive(Debug)]
struct Reference {
    /// `crate::bus` or `sea_orm`: the form [`Rule::must_not_use`] lists.
    target: String,
    /// The path as written, for the message.
    path: String,
    line: usize,
}

/// The references in a file whose own module path is `file_module`.
fn references(file_module: &[String], text: &str) -> Vec<Reference> {
    let tokens = lex(text);
    let mut out = Vec::new();
    // Inline `mod name { ... }` blocks: each entry is the module's name and
    // the brace depth outside it, so `super` inside a test module resolves
    // to the file's own module.
    let mut inline_mods: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let here: Vec<String> = file_module
            .iter()
            .cloned()
            .chain(inline_mods.iter().map(|(name, _)| name.clone()))
            .collect();
        match &tokens[i].kind {
            Kind::Punct('{') => depth += 1,
            Kind::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline_mods.last().is_some_and(|(_, outer)| *outer == depth) {
                    inline_mods.pop();
                }
            }
            Kind::Ident(word) if word == "mod" => {
                if let (Some(Kind::Ident(name)), Some(Kind::Punct('{'))) = (
                    tokens.get(i + 1).map(|t| &t.kind),
                    tokens.get(i + 2).map(|t| &t.kind),
                ) {
                    inline_mods.push((name.clone(), depth));
                }
            }
            Kind::Ident(word)
                if word == "use" && !matches!(kind_at(&tokens, i + 1), Some(Kind::Punct('<'))) =>
            {
                let mut paths = Vec::new();
                i += 1;
                parse_use_tree(&tokens, &mut i, Vec::new(), &mut paths);
                out.extend(paths.iter().filter_map(|path| resolve(&here, path)));
                continue;
            }
            Kind::Ident(word)
                if starts_path(word) && kind_at(&tokens, i + 1) == Some(&Kind::PathSep) =>
            {
                let after_path_or_field = matches!(
                    i.checked_sub(1).and_then(|p| kind_at(&tokens, p)),
                    Some(Kind::PathSep | Kind::Punct('.'))
                );
                if !after_path_or_field {
                    let path = inline_path(&tokens, &mut i);
                    out.extend(resolve(&here, &path));
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn starts_path(word: &str) -> bool {
    matches!(word, "crate" | "super" | "self") || TRACKED_CRATES.contains(&word)
}

fn kind_at(tokens: &[Token], i: usize) -> Option<&Kind> {
    tokens.get(i).map(|t| &t.kind)
}

/// A path segment and the line it is on.
type Segment = (String, usize);

/// `a::b::c` starting at `tokens[*i]`; leaves `*i` after the last segment.
fn inline_path(tokens: &[Token], i: &mut usize) -> Vec<Segment> {
    let mut path = Vec::new();
    while let Some(Token {
        kind: Kind::Ident(word),
        line,
    }) = tokens.get(*i)
    {
        path.push((word.clone(), *line));
        *i += 1;
        if kind_at(tokens, *i) != Some(&Kind::PathSep) {
            break;
        }
        *i += 1;
    }
    path
}

/// One use tree (`a::b`, `a::{b, c::{d, e}}`, `a::*`, `a as b`), each leaf
/// pushed to `out` as a full path. Stops after the closing `;` of the item or
/// at the `,`/`}` that ends a nested tree.
fn parse_use_tree(
    tokens: &[Token],
    i: &mut usize,
    prefix: Vec<Segment>,
    out: &mut Vec<Vec<Segment>>,
) {
    let mut path = prefix;
    if kind_at(tokens, *i) == Some(&Kind::PathSep) {
        *i += 1;
    }
    loop {
        match tokens.get(*i) {
            Some(Token {
                kind: Kind::Punct('{'),
                ..
            }) => {
                *i += 1;
                loop {
                    match kind_at(tokens, *i) {
                        None => return,
                        Some(Kind::Punct('}')) => {
                            *i += 1;
                            break;
                        }
                        Some(Kind::Punct(',')) => *i += 1,
                        Some(_) => parse_use_tree(tokens, i, path.clone(), out),
                    }
                }
                break;
            }
            Some(Token {
                kind: Kind::Ident(word),
                line,
            }) if word != "as" => {
                path.push((word.clone(), *line));
                *i += 1;
                if kind_at(tokens, *i) == Some(&Kind::PathSep) {
                    *i += 1;
                    continue;
                }
                out.push(path);
                break;
            }
            Some(Token {
                kind: Kind::Punct('*'),
                ..
            }) => {
                *i += 1;
                out.push(path);
                break;
            }
            _ => {
                out.push(path);
                break;
            }
        }
    }
    // `as alias`
    if kind_at(tokens, *i) == Some(&Kind::Ident("as".to_owned())) {
        *i += 2;
    }
    if kind_at(tokens, *i) == Some(&Kind::Punct(';')) {
        *i += 1;
    }
}

/// Where a path lands, seen from module `here`: the crate module it enters
/// (`crate::bus`) or the tracked external crate it names. `None` for paths
/// into std, other crates, or names local to the file.
fn resolve(here: &[String], path: &[Segment]) -> Option<Reference> {
    let (first, first_line) = path.first()?;
    let written = path
        .iter()
        .map(|(s, _)| s.as_str())
        .collect::<Vec<_>>()
        .join("::");
    if TRACKED_CRATES.contains(&first.as_str()) {
        return Some(Reference {
            target: first.clone(),
            path: written,
            line: *first_line,
        });
    }
    let (base, rest): (Vec<&str>, &[Segment]) = match first.as_str() {
        "crate" | "$crate" => (Vec::new(), &path[1..]),
        "self" => (here.iter().map(String::as_str).collect(), &path[1..]),
        "super" => {
            let supers = path.iter().take_while(|(s, _)| s == "super").count();
            let keep = here.len().checked_sub(supers)?;
            (
                here[..keep].iter().map(String::as_str).collect(),
                &path[supers..],
            )
        }
        _ => return None,
    };
    let (top, line) = match base.first() {
        Some(top) => ((*top).to_owned(), *first_line),
        None => rest.first().cloned()?,
    };
    Some(Reference {
        target: format!("crate::{top}"),
        path: written,
        line,
    })
}

// ---------------------------------------------------------------------------
// Sizes

fn size_violations(rel: &str, text: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    let lines = text.lines().count();
    if lines > MAX_FILE_LINES {
        out.push(Violation {
            file: rel.to_owned(),
            line: 1,
            message: format!(
                "file has {lines} lines; rule: at most {MAX_FILE_LINES} lines per file"
            ),
        });
    }
    for (name, first, last) in functions(text) {
        let length = last - first + 1;
        if length > MAX_FN_LINES {
            out.push(Violation {
                file: rel.to_owned(),
                line: first,
                message: format!(
                    "fn {name} has {length} lines; rule: at most {MAX_FN_LINES} lines per function"
                ),
            });
        }
    }
    out
}

/// Every `fn` with a body: its name, the line of `fn` and the line of its closing brace.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let tokens = lex(text);
    let mut out = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if token.kind != Kind::Ident("fn".to_owned()) {
            continue;
        }
        // `fn(u8) -> u8` is a pointer type, `fn $name` a macro pattern.
        let Some(Kind::Ident(name)) = kind_at(&tokens, i + 1) else {
            continue;
        };
        let Some(open) = body_start(&tokens, i + 2) else {
            continue;
        };
        if let Some(close) = matching_brace(&tokens, open) {
            out.push((name.clone(), token.line, tokens[close].line));
        }
    }
    out
}

/// The `{` that opens a function body whose signature starts at `from`, or
/// `None` when the signature ends in `;` (a trait method without a default).
fn body_start(tokens: &[Token], from: usize) -> Option<usize> {
    let mut nesting = 0usize;
    for (j, token) in tokens.iter().enumerate().skip(from) {
        match token.kind {
            Kind::Punct('(' | '[') => nesting += 1,
            Kind::Punct(')' | ']') => nesting = nesting.saturating_sub(1),
            Kind::Punct('{') if nesting == 0 => return Some(j),
            Kind::Punct(';') if nesting == 0 => return None,
            _ => {}
        }
    }
    None
}

fn matching_brace(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, token) in tokens.iter().enumerate().skip(open) {
        match token.kind {
            Kind::Punct('{') => depth += 1,
            Kind::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Tokens: just enough of Rust's lexer to drop comments and literals and keep
// identifiers, `::` and single punctuation with their line numbers.

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Ident(String),
    PathSep,
    Punct(char),
    /// A string, char or number literal; its text never matters here.
    Literal,
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    line: usize,
}

fn lex(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut lexer = Lexer {
        chars: &chars,
        at: 0,
        line: 1,
        out: Vec::new(),
    };
    lexer.run();
    lexer.out
}

struct Lexer<'a> {
    chars: &'a [char],
    at: usize,
    line: usize,
    out: Vec<Token>,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn push(&mut self, kind: Kind, line: usize) {
        self.out.push(Token { kind, line });
    }

    fn run(&mut self) {
        while let Some(c) = self.peek(0) {
            let line = self.line;
            match c {
                '/' if self.peek(1) == Some('/') => self.skip_line(),
                '/' if self.peek(1) == Some('*') => self.skip_block_comment(),
                '"' => {
                    self.bump();
                    self.skip_quoted('"');
                    self.push(Kind::Literal, line);
                }
                '\'' => self.char_or_lifetime(),
                ':' if self.peek(1) == Some(':') => {
                    self.at += 2;
                    self.push(Kind::PathSep, line);
                }
                c if c.is_alphabetic() || c == '_' => self.word(),
                c if c.is_ascii_digit() => {
                    while self
                        .peek(0)
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
                    {
                        self.bump();
                    }
                    self.push(Kind::Literal, line);
                }
                c if c.is_whitespace() => {
                    self.bump();
                }
                c => {
                    self.bump();
                    self.push(Kind::Punct(c), line);
                }
            }
        }
    }

    fn skip_line(&mut self) {
        while self.peek(0).is_some_and(|c| c != '\n') {
            self.bump();
        }
    }

    fn skip_block_comment(&mut self) {
        self.at += 2;
        let mut depth = 1;
        while depth > 0 {
            match (self.peek(0), self.peek(1)) {
                (None, _) => return,
                (Some('/'), Some('*')) => {
                    self.at += 2;
                    depth += 1;
                }
                (Some('*'), Some('/')) => {
                    self.at += 2;
                    depth -= 1;
                }
                _ => {
                    self.bump();
                }
            }
        }
    }

    /// Skips to after the closing `quote`, honouring backslash escapes.
    fn skip_quoted(&mut self, quote: char) {
        while let Some(c) = self.bump() {
            if c == '\\' {
                self.bump();
            } else if c == quote {
                return;
            }
        }
    }

    /// `'a'`, `'\n'`, `'\u{1F600}'` are literals; `'a` and `'static` are lifetimes or labels.
    fn char_or_lifetime(&mut self) {
        let line = self.line;
        self.bump();
        if self.peek(0) == Some('\\') || self.peek(1) == Some('\'') {
            self.skip_quoted('\'');
            self.push(Kind::Literal, line);
        } else {
            while self
                .peek(0)
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                self.bump();
            }
        }
    }

    /// An identifier or keyword, or the prefix of a string literal
    /// (`b"..."`, `r#"..."#`, `br"..."`, `c"..."`, `b'x'`), or a raw identifier.
    fn word(&mut self) {
        let line = self.line;
        let start = self.at;
        while self
            .peek(0)
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            self.bump();
        }
        let word: String = self.chars[start..self.at].iter().collect();
        match (word.as_str(), self.peek(0)) {
            ("b" | "c", Some('"')) => {
                self.bump();
                self.skip_quoted('"');
                self.push(Kind::Literal, line);
            }
            ("b", Some('\'')) => {
                self.bump();
                self.skip_quoted('\'');
                self.push(Kind::Literal, line);
            }
            ("r" | "br" | "cr", Some('"' | '#')) => self.raw_string_or_ident(line),
            _ => self.push(Kind::Ident(word), line),
        }
    }

    /// After `r`: `r"..."`, `r##"..."##`, or the raw identifier `r#type`.
    fn raw_string_or_ident(&mut self, line: usize) {
        let mut hashes = 0;
        while self.peek(hashes) == Some('#') {
            hashes += 1;
        }
        if self.peek(hashes) != Some('"') {
            // A raw identifier: `r#` then the word.
            self.bump();
            self.word();
            return;
        }
        for _ in 0..=hashes {
            self.bump();
        }
        while let Some(c) = self.bump() {
            if c == '"' && (0..hashes).all(|k| self.peek(k) == Some('#')) {
                for _ in 0..hashes {
                    self.bump();
                }
                break;
            }
        }
        self.push(Kind::Literal, line);
    }
}

// ---------------------------------------------------------------------------
// Files

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn relative(file: &Path) -> String {
    let rel = file
        .strip_prefix(workspace())
        .expect("file inside the workspace");
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `.rs` file under `dir`, sorted so reports are stable.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("read source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// The checker checked: it must be able to fail.

fn messages(violations: &[Violation]) -> Vec<String> {
    violations.iter().map(ToString::to_string).collect()
}

#[test]
fn grouped_and_inline_wrong_way_imports_are_reported() {
    let fake = r#"
use crate::{
    domain::webhooks,
    ids::{EventId, WebhookId},
    bus::{Bus, LiveAttempt},
};
use sea_orm::EntityTrait;

fn publish() {
    crate::delivery::wake_worker();
}
"#;
    let found = messages(&layering_violations("src/domain/fake.rs", fake));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("src/domain/fake.rs:5: `crate::bus::Bus` refers to crate::bus"),
        "{found:#?}"
    );
    assert!(
        found[0].contains("rule: domain must not use crate::bus"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("src/domain/fake.rs:10: `crate::delivery::wake_worker`"),
        "{found:#?}"
    );
}

#[test]
fn super_paths_resolve_to_the_module_they_land_in() {
    let fake = "use super::bus::Bus;\nmod tests {\n    use super::super::http::router;\n    use super::*;\n}\n";
    // From src/graphql/mod.rs, `super` is the crate root.
    let found = messages(&layering_violations("src/graphql/mod.rs", fake));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("src/graphql/mod.rs:1: `super::bus::Bus` refers to crate::bus"));
    assert!(
        found[1].starts_with(
            "src/graphql/mod.rs:3: `super::super::http::router` refers to crate::http"
        )
    );
    // From a deeper file, `super` stays inside graphql.
    assert!(
        layering_violations("src/graphql/query/events.rs", "use super::super::types::X;")
            .is_empty()
    );
}

#[test]
fn comments_strings_and_allowed_places_are_not_reported() {
    let fake = r##"
// use crate::bus::Bus;
/* crate::http::router /* nested */ crate::bus::X */
const A: &str = "crate::delivery::x";
const B: &str = r#"use crate::bus::Bus;"#;
const C: char = '"';
fn f<'a>(x: &'a str) -> &'a str { x.entity::<u8>(); x }
use crate::domain::webhooks;
"##;
    assert!(layering_violations("src/graphql/fake.rs", fake).is_empty());
    let entity = "use entity::webhook;\nfn view() { entity::delivery::Model::default(); }";
    assert!(layering_violations("src/graphql/types/webhook.rs", entity).is_empty());
    assert_eq!(
        layering_violations("src/graphql/query/webhooks.rs", entity).len(),
        2
    );
    assert!(layering_violations("src/lib.rs", "use crate::bus::Bus;").is_empty());
}

#[test]
fn long_functions_and_files_are_reported() {
    let body = "    let x = '}';\n".repeat(80);
    let fake = format!("fn short() {{}}\nfn long() {{\n{body}}}\ntrait T {{ fn decl(&self); }}\n");
    let found = messages(&size_violations("src/fake.rs", &fake));
    assert_eq!(
        found,
        ["src/fake.rs:2: fn long has 82 lines; rule: at most 80 lines per function"]
    );

    let long_file = "\n".repeat(MAX_FILE_LINES + 1);
    assert_eq!(size_violations("src/fake.rs", &long_file).len(), 1);
}
