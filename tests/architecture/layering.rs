//! Which module a reference lands in, and whether [`RULES`] forbid it.

use std::collections::BTreeMap;

use crate::{
    RULES, TRACKED_CRATES, Violation, WIRING_ROOT,
    tokens::{Kind, Token, kind_at, lex},
};

/// Every reference in `text` (the file at `rel`, e.g. `src/domain/events.rs`)
/// that one of [`RULES`] forbids.
pub fn layering_violations(rel: &str, text: &str) -> Vec<Violation> {
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
