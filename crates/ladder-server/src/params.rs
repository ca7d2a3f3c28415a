//! Request parameters as the protocol defines them: form-urlencoded, each at most once
//! (RFC 6749 §3.1), an empty value treated as absent.

#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicated(pub String);

impl Params {
    pub fn parse(encoded: &[u8]) -> Params {
        Params(url::form_urlencoded::parse(encoded).into_owned().collect())
    }

    /// The value of `name`, or an error when it is given more than once.
    pub fn get(&self, name: &str) -> Result<Option<&str>, Duplicated> {
        let mut found = None;
        for (k, v) in &self.0 {
            if k == name && !v.is_empty() {
                if found.is_some() {
                    return Err(Duplicated(name.to_owned()));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }

    /// The first limit these parameters break, if any: at most `max_count` parameters, names of
    /// at most 64 characters, values of at most `max_len` (a client controls all of it).
    pub fn over_limit(&self, max_count: usize, max_len: usize) -> Option<String> {
        if self.0.len() > max_count {
            return Some(format!("The request has more than {max_count} parameters."));
        }
        self.0.iter().find_map(|(k, v)| {
            if k.len() > 64 {
                Some("A parameter name is longer than 64 characters.".to_owned())
            } else if v.len() > max_len {
                Some(format!("The `{}` parameter is longer than {max_len} characters.", k.chars().take(64).collect::<String>()))
            } else {
                None
            }
        })
    }

    /// The first parameter that is given more than once, if any.
    pub fn first_duplicate(&self) -> Option<&str> {
        self.0
            .iter()
            .enumerate()
            .find(|(i, (k, v))| !v.is_empty() && self.0[..*i].iter().any(|(k2, v2)| k2 == k && !v2.is_empty()))
            .map(|(_, (k, _))| k.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_absent_and_duplicates_are_refused() {
        let p = Params::parse(b"a=1&b=&c=x&c=y&d=%20z");
        assert_eq!(p.get("a"), Ok(Some("1")));
        assert_eq!(p.get("b"), Ok(None));
        assert_eq!(p.get("c"), Err(Duplicated("c".into())));
        assert_eq!(p.get("d"), Ok(Some(" z")));
        assert_eq!(p.first_duplicate(), Some("c"));
        assert_eq!(Params::parse(b"a=1&b=2").first_duplicate(), None);
    }
}
