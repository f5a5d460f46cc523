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

mod layering;
mod self_check;
mod sizes;
mod tokens;

use std::{
    fmt, fs,
    path::{Path, PathBuf},
};

use layering::layering_violations;
use sizes::size_violations;

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
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

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
