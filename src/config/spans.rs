//! Where a key is written in the config text, by its path.
//!
//! serde loses spans inside internally tagged sections (`[source]`,
//! `[platform]`: `kind = …` buffers the table), so errors found after
//! parsing are located here from the document itself. `toml_edit` keeps a
//! span for every key, also inside inline tables (`role_map = { aide =
//! "examiner" }`) and dotted keys, which a line-by-line search cannot find.

use std::ops::Range;

use toml_edit::{ArrayOfTables, ImDocument, Item, Key, Table, Value};

/// One step of a path: a key, optionally followed by `[n]` (an array of
/// tables such as `[[source.schools]]`).
fn steps(path: &str) -> impl Iterator<Item = (&str, Option<usize>)> {
    path.split('.').filter(|s| !s.is_empty()).map(|s| {
        match s
            .strip_suffix(']')
            .and_then(|s| s.split_once('['))
            .and_then(|(k, n)| Some((k, n.parse().ok()?)))
        {
            Some((k, n)) => (k, Some(n)),
            None => (s, None),
        }
    })
}

/// A node of the document.
#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a Table),
    Tables(&'a ArrayOfTables),
    Value(&'a Value),
    None,
}

impl<'a> Node<'a> {
    fn of(item: &'a Item) -> Node<'a> {
        match item {
            Item::Table(t) => Node::Table(t),
            Item::ArrayOfTables(a) => Node::Tables(a),
            Item::Value(v) => Node::Value(v),
            Item::None => Node::None,
        }
    }

    /// The keys below this node, each with the node it names.
    fn children(self) -> Vec<(&'a Key, Node<'a>)> {
        match self {
            Node::Table(t) => t
                .iter()
                .filter_map(|(k, _)| t.get_key_value(k))
                .map(|(k, v)| (k, Node::of(v)))
                .collect(),
            Node::Value(Value::InlineTable(t)) => t
                .iter()
                .filter_map(|(k, _)| t.get_key_value(k))
                .map(|(k, v)| (k, Node::of(v)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The child `key`, with the span of the key as written.
    fn child(self, key: &str) -> Option<(Node<'a>, Option<Range<usize>>)> {
        self.children()
            .into_iter()
            .find(|(k, _)| k.get() == key)
            .map(|(k, n)| (n, k.span()))
    }

    /// Element `n` of an array (of tables).
    fn index(self, n: usize) -> Option<(Node<'a>, Option<Range<usize>>)> {
        match self {
            Node::Tables(a) => a.get(n).map(|t| (Node::Table(t), t.span())),
            Node::Value(Value::Array(a)) => a.get(n).map(|v| (Node::Value(v), v.span())),
            _ => None,
        }
    }

    /// Every element of an array (of tables).
    fn elements(self) -> Vec<Node<'a>> {
        match self {
            Node::Tables(a) => a.iter().map(Node::Table).collect(),
            Node::Value(Value::Array(a)) => a.iter().map(Node::Value).collect(),
            _ => Vec::new(),
        }
    }
}

/// Byte range of `section.key` (section steps may carry `[n]`): the key
/// as written when it is set, else the deepest part of the path that is
/// (a default is in force: the section names where to add it).
pub fn locate(text: &str, section: &str, key: &str) -> Option<Range<usize>> {
    let doc = ImDocument::parse(text).ok()?;
    let mut node = Node::of(doc.as_item());
    let mut best = None;
    let path = steps(section).chain(std::iter::once((key, None)));
    for (k, index) in path {
        let Some((next, span)) = node.child(k) else {
            break;
        };
        best = span.or(best);
        node = next;
        if let Some(n) = index {
            let Some((next, span)) = node.index(n) else {
                break;
            };
            best = span.or(best);
            node = next;
        }
    }
    best
}

/// Where `section.key` is written, only when every step of the path is
/// (an error about a key the file does not hold is placed otherwise).
pub fn locate_exact(text: &str, section: &str, key: &str) -> Option<Range<usize>> {
    let doc = ImDocument::parse(text).ok()?;
    let mut node = Node::of(doc.as_item());
    let mut at = None;
    for (k, index) in steps(section).chain(std::iter::once((key, None))) {
        let (next, span) = node.child(k)?;
        at = span.or(at);
        node = next;
        if let Some(n) = index {
            let (next, span) = node.index(n)?;
            at = span.or(at);
            node = next;
        }
    }
    at
}

/// The first key named `name` at or after the start of `within` (serde's
/// span of an error in a buffered section is the whole section, or its
/// header when the key is in a sub-table; the unknown key follows it).
pub fn key_inside(text: &str, within: &Range<usize>, name: &str) -> Option<Range<usize>> {
    let doc = ImDocument::parse(text).ok()?;
    let mut found: Option<Range<usize>> = None;
    visit(Node::of(doc.as_item()), &mut |k, span| {
        let nearer = found.as_ref().is_none_or(|f| span.start < f.start);
        if k == name && span.start >= within.start && nearer {
            found = Some(span);
        }
    });
    found
}

fn visit(node: Node<'_>, f: &mut dyn FnMut(&str, Range<usize>)) {
    for (k, child) in node.children() {
        if let Some(s) = k.span() {
            f(k.get(), s);
        }
        visit(child, f);
    }
    for e in node.elements() {
        visit(e, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, section: &str, key: &str) -> Option<usize> {
        locate(text, section, key).map(|r| text[..r.start].matches('\n').count() + 1)
    }

    const TEXT: &str = "[source]\nkind = \"x\"\nrole_map = { aide = \"examiner\", staff = \"proctor\" }\n\n\n[[safety.freeze]]\nfrom = 1\n\n[[safety.freeze]]\nfrom = 2\nuntil = 3\n\nplatform.auth.kind = \"bearer\"\n";

    #[test]
    fn keys_are_found_in_tables_inline_tables_arrays_and_dotted_keys() {
        assert_eq!(line(TEXT, "source", "kind"), Some(2));
        assert_eq!(line(TEXT, "source.role_map", "aide"), Some(3));
        assert_eq!(line(TEXT, "source.role_map", "staff"), Some(3));
        assert_eq!(line(TEXT, "safety.freeze[1]", "until"), Some(11));
        assert_eq!(line(TEXT, "safety.freeze[1]", "from"), Some(10));
        assert_eq!(line(TEXT, "safety.freeze[0]", "from"), Some(7));
        assert_eq!(
            line(TEXT, "safety.freeze[1].platform.auth", "kind"),
            Some(13)
        );
        // absent key: the deepest part of the path that is written
        assert_eq!(line(TEXT, "source.role_map", "teacher"), Some(3));
        assert_eq!(line(TEXT, "source", "token_file"), Some(1));
        assert_eq!(line(TEXT, "nowhere", "x"), None);
    }

    #[test]
    fn unknown_key_is_found_inside_a_span() {
        let start = TEXT.find("[[safety.freeze]]\nfrom = 2").unwrap();
        let r = key_inside(TEXT, &(start..TEXT.len()), "from").unwrap();
        assert_eq!(TEXT[..r.start].matches('\n').count() + 1, 10);
    }
}
