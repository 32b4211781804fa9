//! `sisync.toml(5)`: the configuration page, generated from the README's
//! "Configuration" section (its prose, examples and key table), so the man
//! page and the README can never disagree.

/// The README this binary was built from.
const README: &str = include_str!("../../README.md");

/// The roff text of `sisync.toml(5)`.
pub fn page(version: &str) -> String {
    render(README, version)
}

fn render(readme: &str, version: &str) -> String {
    let mut out = format!(
        ".TH SISYNC.TOML 5 \"\" \"sisync {}\" \"File Formats\"\n\
         .SH NAME\n\
         sisync.toml \\- configuration of sisync\n\
         .SH SYNOPSIS\n\
         .I /etc/sisync/sisync.toml\n\
         .br\n\
         .I /etc/sisync/INSTANCE.toml\n\
         (one per institution with the sisync@INSTANCE unit)\n\
         .SH DESCRIPTION\n",
        escape(version)
    );
    let section = config_section(readme);
    let mut in_code = false;
    let mut in_table = false;
    let mut paragraph = String::new();
    for line in section.lines() {
        if line.starts_with("```") {
            flush(&mut out, &mut paragraph);
            out.push_str(if in_code { ".fi\n.RE\n" } else { ".RS\n.nf\n" });
            in_code = !in_code;
            continue;
        }
        if in_code {
            out.push_str(&escape_line(line));
            out.push('\n');
            continue;
        }
        if line.starts_with('|') {
            flush(&mut out, &mut paragraph);
            let cells = cells(line);
            if cells.len() < 3 || cells[0] == "key" || cells[0].starts_with("---") {
                continue;
            }
            if !in_table {
                out.push_str(".SH KEYS\n");
                in_table = true;
            }
            out.push_str(".TP\n");
            out.push_str(&format!(
                "\\fB{}\\fR (default: {})\n{}\n",
                inline(&cells[0].replace('`', "")),
                inline(&cells[1]),
                inline(&cells[2..].join(" | "))
            ));
            continue;
        }
        if let Some(title) = line.strip_prefix("### ") {
            flush(&mut out, &mut paragraph);
            out.push_str(&format!(".SS {}\n", inline(title.trim())));
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut out, &mut paragraph);
            continue;
        }
        if !paragraph.is_empty() {
            paragraph.push(' ');
        }
        paragraph.push_str(line.trim());
    }
    flush(&mut out, &mut paragraph);
    out.push_str(
        ".SH FILES\n\
         .TP\n\
         .I /etc/sisync/sisync.toml\n\
         the configuration (a conffile of the package)\n\
         .TP\n\
         .I /usr/share/doc/sisync/examples/sisync.example.toml\n\
         a commented example with every section\n\
         .SH \"SEE ALSO\"\n\
         .BR sisync (1),\n\
         .BR systemd.exec (5)\n",
    );
    out
}

/// The README text under `## Configuration`, up to the next `## ` heading.
fn config_section(readme: &str) -> &str {
    let Some(start) = readme.find("\n## Configuration\n") else {
        return "";
    };
    let body = &readme[start + "\n## Configuration\n".len()..];
    match body.find("\n## ") {
        Some(end) => &body[..end],
        None => body,
    }
}

fn flush(out: &mut String, paragraph: &mut String) {
    if paragraph.is_empty() {
        return;
    }
    out.push_str(".PP\n");
    out.push_str(&inline(paragraph));
    out.push('\n');
    paragraph.clear();
}

/// The cells of a Markdown table row; a `|` inside backticks or escaped as
/// `\|` belongs to its cell.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut in_code = false;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '`' => {
                in_code = !in_code;
                cell.push(c);
            }
            '|' if !in_code => cells.push(std::mem::take(&mut cell).trim().to_string()),
            _ => cell.push(c),
        }
    }
    cells.push(cell.trim().to_string());
    cells
}

/// Markdown inline text to roff: links keep their text, `code` and
/// **strong** become bold, roff's special characters are escaped.
fn inline(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut rest = text;
    // [text](target) -> text
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find("](").and_then(|close| {
            after[close + 2..]
                .find(')')
                .map(|end| (close, close + 2 + end))
        }) {
            Some((close, end)) => {
                plain.push_str(&rest[..open]);
                plain.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            None => {
                plain.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    plain.push_str(rest);
    let escaped = escape(&plain.replace("**", "`"));
    let mut out = String::with_capacity(escaped.len() + 16);
    let mut bold = false;
    for c in escaped.chars() {
        if c == '`' {
            out.push_str(if bold { "\\fR" } else { "\\fB" });
            bold = !bold;
        } else {
            out.push(c);
        }
    }
    if bold {
        out.push_str("\\fR");
    }
    escape_line(&out)
}

/// roff escapes inside a line: backslash and hyphen.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// A text line that starts with `.` or `'` would be read as a request.
fn escape_line(line: &str) -> String {
    if line.starts_with('.') || line.starts_with('\'') {
        format!("\\&{line}")
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_readme_table_is_on_the_page() {
        let page = page("0.1.0");
        let keys: Vec<String> = config_section(README)
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| cells(l)[0].replace('`', ""))
            .collect();
        assert!(keys.len() > 50, "the README table was not found");
        for key in keys {
            let want = format!(".TP\n\\fB{}\\fR", escape(&key));
            assert!(page.contains(&want), "{key} missing from sisync.toml(5)");
        }
        assert!(page.starts_with(".TH SISYNC.TOML 5"));
        assert!(page.contains(".SH KEYS\n"));
    }

    #[test]
    fn markdown_becomes_roff() {
        let readme = "# x\n\n## Configuration\n\nSee [`a.toml`](a.toml) and **this**.\n\n### Sub part\n\n\
                      ```\n.dot line\n```\n\n| key | default | meaning |\n|---|---|---|\n\
                      | `a.b` | `\"x\"` | one `a|b` or \\| two |\n\n## Next\nnot this\n";
        let page = render(readme, "1");
        assert!(page.contains(".PP\nSee \\fBa.toml\\fR and \\fBthis\\fR.\n"));
        assert!(page.contains(".SS Sub part\n"));
        assert!(page.contains(".RS\n.nf\n\\&.dot line\n.fi\n.RE\n"));
        assert!(
            page.contains(".TP\n\\fBa.b\\fR (default: \\fB\"x\"\\fR)\none \\fBa|b\\fR or | two\n")
        );
        assert!(!page.contains("not this"));
    }
}
