//! Just enough HTML reading to drive sign-in pages: forms with their inputs, the TOTP enrolment
//! secret, and "continue" links. Tag and attribute names are matched case-insensitively.

#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub value: String,
    pub kind: String,
}

#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub inputs: Vec<Input>,
}

impl Form {
    pub fn has_password(&self) -> bool {
        self.inputs.iter().any(|i| i.kind == "password")
    }

    pub fn hidden(&self, name: &str) -> Option<&str> {
        self.inputs.iter().find(|i| i.kind == "hidden" && i.name == name).map(|i| i.value.as_str())
    }

    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|i| i.name == name)
    }

    /// The form's fields as a browser would submit them, with `set` overriding or adding values.
    pub fn fill(&self, set: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .inputs
            .iter()
            .filter(|i| !i.name.is_empty() && !matches!(i.kind.as_str(), "submit" | "button" | "checkbox" | "radio"))
            .map(|i| (i.name.clone(), i.value.clone()))
            .collect();
        for (name, value) in set {
            match out.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = (*value).to_owned(),
                None => out.push(((*name).to_owned(), (*value).to_owned())),
            }
        }
        out
    }
}

/// Every `<form>` with its `action` and `<input>`s.
pub fn forms(html: &str) -> Vec<Form> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(start) = lower[pos..].find("<form").map(|i| i + pos) {
        let end = lower[start..].find("</form").map_or(html.len(), |i| i + start);
        let (attrs, body_start) = tag_attrs(html, start + 5);
        let action = attr(&attrs, "action").unwrap_or_default();
        let mut inputs = Vec::new();
        let mut p = body_start;
        while let Some(i) = lower[p..end].find("<input").map(|i| i + p) {
            let (a, next) = tag_attrs(html, i + 6);
            inputs.push(Input {
                name: attr(&a, "name").unwrap_or_default(),
                value: attr(&a, "value").unwrap_or_default(),
                kind: attr(&a, "type").unwrap_or_else(|| "text".into()).to_ascii_lowercase(),
            });
            p = next.min(end);
        }
        out.push(Form { action, inputs });
        pos = end.max(start + 5);
    }
    out
}

/// The text of `<code class="secret">…</code>` (the TOTP enrolment secret), spaces removed.
pub fn secret(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let mut pos = 0;
    while let Some(start) = lower[pos..].find("<code").map(|i| i + pos) {
        let (attrs, body) = tag_attrs(html, start + 5);
        let end = lower[body..].find("</code").map(|i| i + body)?;
        if attr(&attrs, "class").is_some_and(|c| c.split_whitespace().any(|c| c == "secret")) {
            return Some(decode(&html[body..end]).split_whitespace().collect());
        }
        pos = end;
    }
    None
}

/// The first link whose target starts with `prefix`.
pub fn link(html: &str, prefix: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let mut pos = 0;
    while let Some(start) = lower[pos..].find("<a").map(|i| i + pos) {
        let (attrs, next) = tag_attrs(html, start + 2);
        if let Some(href) = attr(&attrs, "href")
            && href.starts_with(prefix)
        {
            return Some(href);
        }
        pos = next;
    }
    None
}

/// The text of the page's first `role="alert"` element (the message Ladder shows after a refusal).
pub fn alert(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let at = lower.find("role=\"alert\"")?;
    let start = lower[at..].find('>')? + at + 1;
    let end = lower[start..].find('<')? + start;
    Some(decode(html[start..end].trim()))
}

/// The page's `<title>`, for error messages.
pub fn title(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    match (lower.find("<title>"), lower.find("</title>")) {
        (Some(s), Some(e)) if e > s => decode(html[s + 7..e].trim()),
        _ => html.chars().take(80).collect(),
    }
}

fn attr(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// Attributes of the tag whose name ends at `from`, and the offset after its `>`.
fn tag_attrs(html: &str, from: usize) -> (Vec<(String, String)>, usize) {
    let b = html.as_bytes();
    let mut i = from;
    let mut out = Vec::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return (out, i);
        }
        if b[i] == b'>' {
            return (out, i + 1);
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = html[start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let s = i + 1;
                i = s;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = decode(&html[s..i.min(b.len())]);
                i += 1;
            } else {
                let s = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = decode(&html[s..i]);
            }
        }
        if name.is_empty() {
            i += 1;
        } else {
            out.push((name, value));
        }
    }
}

/// Decodes the character references askama and node-oidc-provider emit.
pub fn decode(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => {
                u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
            }
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_forms_secrets_and_links() {
        let html = r#"<title>Sign in &#183; Ladder</title><FORM method="post" action="/interaction/ab&#45;c/password">
          <input type="hidden" name="csrf" value="t0k&#61;n"><input id=u name=username type=text value="">
          <input name="password" type="password" required></form>
          <code class="secret">ABCD EFGH</code><a class="button" href="/interaction/x">Continue</a>"#;
        let f = forms(html);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].action, "/interaction/ab-c/password");
        assert_eq!(f[0].hidden("csrf"), Some("t0k=n"));
        assert!(f[0].has_password());
        assert_eq!(
            f[0].fill(&[("username", "al")]),
            vec![("csrf".into(), "t0k=n".into()), ("username".into(), "al".into()), ("password".into(), "".into())]
        );
        assert_eq!(secret(html).as_deref(), Some("ABCDEFGH"));
        assert_eq!(link(html, "/interaction/").as_deref(), Some("/interaction/x"));
        assert_eq!(title(html), "Sign in · Ladder");
    }
}
