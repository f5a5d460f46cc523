//! How long files and functions are.

use crate::{
    MAX_FILE_LINES, MAX_FN_LINES, Violation,
    tokens::{Kind, Token, kind_at, lex},
};

pub fn size_violations(rel: &str, text: &str) -> Vec<Violation> {
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
