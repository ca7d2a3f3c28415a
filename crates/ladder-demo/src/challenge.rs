//! The client side of RFC 9470: read a resource server's `WWW-Authenticate: Bearer …` challenge
//! and turn `insufficient_user_authentication` into what the next authorization request asks for.

use std::collections::HashMap;

/// A Bearer challenge's auth-params (RFC 9110 §11.2, RFC 6750 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    /// The header as received, shown to the user in the "what happened" panel.
    pub raw: String,
    params: HashMap<String, String>,
}

/// RFC 9470 §3: what the client must obtain before calling again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUp {
    /// Space-separated in the challenge; preference order.
    pub acr_values: Vec<String>,
    pub max_age: Option<u64>,
    pub description: Option<String>,
    pub raw: String,
}

impl BearerChallenge {
    /// Parses the first `Bearer` challenge of a header value; other schemes are ignored.
    pub fn parse(header: &str) -> Option<BearerChallenge> {
        let rest = header.trim_start();
        let (scheme, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        Some(BearerChallenge {
            raw: header.to_owned(),
            params: auth_params(rest),
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn error(&self) -> Option<&str> {
        self.param("error")
    }

    /// `Some` when the resource server asked for a stronger or more recent authentication.
    pub fn step_up(&self) -> Option<StepUp> {
        if self.error() != Some("insufficient_user_authentication") {
            return None;
        }
        Some(StepUp {
            acr_values: self
                .param("acr_values")
                .map(|v| v.split_ascii_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            max_age: self.param("max_age").and_then(|v| v.trim().parse().ok()),
            description: self.param("error_description").map(str::to_owned),
            raw: self.raw.clone(),
        })
    }
}

/// `name=token` or `name="quoted \" string"`, separated by commas.
fn auth_params(mut s: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    loop {
        s = s.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some(eq) = s.find('=') else { break };
        let name = s[..eq].trim().to_ascii_lowercase();
        s = s[eq + 1..].trim_start();
        let value = if let Some(quoted) = s.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            s = &quoted[end..];
            value
        } else {
            let end = s.find(',').unwrap_or(s.len());
            let value = s[..end].trim().to_owned();
            s = &s[end..];
            value
        };
        params.entry(name).or_insert(value);
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rfc_9470_challenge() {
        let header = r#"Bearer error="insufficient_user_authentication", error_description="A higher level of authentication is required.", acr_values="urn:ladder:loa:2", max_age="300""#;
        let step_up = BearerChallenge::parse(header).unwrap().step_up().unwrap();
        assert_eq!(step_up.acr_values, ["urn:ladder:loa:2"]);
        assert_eq!(step_up.max_age, Some(300));
        assert_eq!(
            step_up.description.as_deref(),
            Some("A higher level of authentication is required.")
        );
    }

    #[test]
    fn tokens_escapes_and_other_errors() {
        let c =
            BearerChallenge::parse(r#"bearer realm="a \"b\", c", max_age=60, acr_values="x y""#)
                .unwrap();
        assert_eq!(c.param("realm"), Some(r#"a "b", c"#));
        assert_eq!(c.param("max_age"), Some("60"));
        assert_eq!(c.step_up(), None, "no error: not a step-up");
        let expired =
            BearerChallenge::parse(r#"Bearer error="invalid_token", error_description="expired""#)
                .unwrap();
        assert_eq!(expired.error(), Some("invalid_token"));
        assert!(BearerChallenge::parse("Basic realm=x").is_none());
        assert_eq!(BearerChallenge::parse("Bearer").unwrap().error(), None);
    }
}
