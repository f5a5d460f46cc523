//! Just enough of Rust's lexer to drop comments and literals and keep
//! identifiers, `::` and single punctuation with their line numbers.

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Ident(String),
    PathSep,
    Punct(char),
    /// A string, char or number literal; its text never matters here.
    Literal,
}

#[derive(Debug)]
pub struct Token {
    pub kind: Kind,
    pub line: usize,
}

/// The kind of `tokens[i]`, if there is one.
pub fn kind_at(tokens: &[Token], i: usize) -> Option<&Kind> {
    tokens.get(i).map(|t| &t.kind)
}

pub fn lex(text: &str) -> Vec<Token> {
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
