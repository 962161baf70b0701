//! The little YAML the web config needs: a tree of mappings, sequences and scalars built from
//! yaml-rust2's events, with line numbers for messages, duplicate keys rejected, and aliases
//! expanded within a node budget (so a file of nested aliases cannot blow up memory).

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

use crate::limits::MAX_WEB_CONFIG_NODES;

/// A YAML node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// A scalar: its text, and whether it was plain (unquoted), which decides whether `~`,
    /// `null`, `true` and the like are what they say or just text.
    Scalar { text: String, plain: bool },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping: keys (scalars) with the line they are on (1-based), in file order.
    Map(Vec<Entry>),
}

/// One key of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) line: usize,
    pub(crate) value: Node,
}

impl Node {
    /// A plain `~`, `null` or empty scalar (YAML's null).
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A node's size in the budget: itself and everything under it.
    fn size(&self) -> usize {
        match self {
            Node::Scalar { .. } => 1,
            Node::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Node::Map(entries) => 1 + entries.iter().map(|e| 1 + e.value.size()).sum::<usize>(),
        }
    }
}

/// A container being filled.
enum Open {
    Seq(Vec<Node>, usize),
    /// Entries so far, a key waiting for its value (with its line), the anchor id.
    Map(Vec<Entry>, Option<(String, usize)>, usize),
}

/// Parses one YAML document (an empty file is `None`). `Err` says what is wrong and where.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, String> {
    // yaml-rust2 reports malformed input as errors; the catch is a second line of defence, so
    // that a parser bug on a strange file is a start-up error rather than a crash.
    match catch_unwind(AssertUnwindSafe(|| parse_events(text))) {
        Ok(r) => r,
        Err(_) => Err("the YAML parser failed on this file".into()),
    }
}

fn parse_events(text: &str) -> Result<Option<Node>, String> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut nodes = 0usize;
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| e.to_string())?;
        let line = mark.line();
        let is_seq = matches!(event, Event::SequenceStart(..));
        let done = match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(format!(
                        "line {line}: a second YAML document; the web config is one document"
                    ));
                }
                None
            }
            Event::Alias(id) => {
                let node = anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| format!("line {line}: an alias to an unknown anchor"))?;
                nodes += node.size();
                Some((node, 0))
            }
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(tag) = tag {
                    return Err(format!(
                        "line {line}: YAML tags such as {}{} are not supported",
                        tag.handle, tag.suffix
                    ));
                }
                nodes += 1;
                let plain = style == TScalarStyle::Plain;
                Some((Node::Scalar { text, plain }, anchor))
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                if let Some(tag) = tag {
                    return Err(format!(
                        "line {line}: YAML tags such as {}{} are not supported",
                        tag.handle, tag.suffix
                    ));
                }
                nodes += 1;
                stack.push(if is_seq {
                    Open::Seq(Vec::new(), anchor)
                } else {
                    Open::Map(Vec::new(), None, anchor)
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Open::Seq(items, anchor)) => Some((Node::Seq(items), anchor)),
                _ => return Err(format!("line {line}: unbalanced sequence")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Open::Map(entries, None, anchor)) => Some((Node::Map(entries), anchor)),
                _ => return Err(format!("line {line}: unbalanced mapping")),
            },
        };
        if nodes > MAX_WEB_CONFIG_NODES {
            return Err(format!(
                "more than {MAX_WEB_CONFIG_NODES} YAML nodes (aliases counted as expanded)"
            ));
        }
        let Some((node, anchor)) = done else { continue };
        if anchor > 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open::Seq(items, _)) => items.push(node),
            Some(Open::Map(entries, pending, _)) => match pending.take() {
                None => {
                    let Node::Scalar { text, .. } = node else {
                        return Err(format!("line {line}: a mapping key must be a scalar"));
                    };
                    if entries.iter().any(|e| e.key == text) {
                        return Err(format!("line {}: duplicate key {text:?}", line));
                    }
                    *pending = Some((text, line));
                }
                Some((key, key_line)) => entries.push(Entry {
                    key,
                    line: key_line,
                    value: node,
                }),
            },
        }
    }
    if !stack.is_empty() {
        return Err("the YAML ends inside a mapping or sequence".into());
    }
    Ok(root.filter(|n| !n.is_null()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scalar(text: &str) -> Node {
        Node::Scalar {
            text: text.into(),
            plain: true,
        }
    }

    #[test]
    fn mappings_sequences_and_lines() {
        let n = parse("a: 1\nb:\n  - x\n  - 'y'\nc: {d: e}\n")
            .unwrap()
            .unwrap();
        let Node::Map(entries) = n else {
            panic!("{n:?}")
        };
        assert_eq!(entries[0].key, "a");
        assert_eq!(entries[0].line, 1);
        assert_eq!(entries[0].value, scalar("1"));
        assert_eq!(entries[1].line, 2);
        assert_eq!(
            entries[1].value,
            Node::Seq(vec![
                scalar("x"),
                Node::Scalar {
                    text: "y".into(),
                    plain: false
                }
            ])
        );
        assert_eq!(entries[2].line, 5);
    }

    #[test]
    fn empty_and_null_documents_are_none() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
        assert_eq!(parse("~\n").unwrap(), None);
    }

    #[test]
    fn rejected_shapes() {
        let dup = parse("a: 1\na: 2\n").unwrap_err();
        assert!(
            dup.contains("duplicate key \"a\"") && dup.contains("line 2"),
            "{dup}"
        );
        assert!(parse("a: 1\n---\nb: 2\n").unwrap_err().contains("second"));
        assert!(parse("a: !!str 1\n").unwrap_err().contains("tags"));
        assert!(parse("a: [1, 2\n").is_err());
        assert!(parse("? [a]\n: b\n").unwrap_err().contains("key"));
    }

    #[test]
    fn aliases_expand_within_the_budget() {
        let n = parse("a: &x v\nb: *x\n").unwrap().unwrap();
        let Node::Map(entries) = n else { panic!() };
        assert_eq!(entries[1].value, scalar("v"));
        // Ten levels of ten aliases each would be 10^10 nodes.
        let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
            ));
        }
        assert!(parse(&bomb).unwrap_err().contains("nodes"));
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_yaml_like_text(s in "[a-z:&*!\\[\\]{},'\"\\-\\?|> \n#~]{0,120}") {
            let _ = parse(&s);
        }
    }
}
