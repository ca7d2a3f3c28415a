//! The `prompt` parameter (OIDC Core §3.1.2.1) parsed once into a set where `none` stands alone.

use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
    pub select_account: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    #[error("prompt=none cannot be combined with other values")]
    NoneNotAlone,
    #[error("unsupported prompt value `{0}`")]
    Unknown(String),
}

impl FromStr for Prompt {
    type Err = PromptError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = Prompt::default();
        let mut count = 0;
        for v in s.split(' ').filter(|v| !v.is_empty()) {
            count += 1;
            match v {
                "none" => p.none = true,
                "login" => p.login = true,
                "consent" => p.consent = true,
                "select_account" => p.select_account = true,
                other => return Err(PromptError::Unknown(other.to_owned())),
            }
        }
        if p.none && count > 1 {
            return Err(PromptError::NoneNotAlone);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sets_and_refuses_none_with_others() {
        assert_eq!("".parse::<Prompt>(), Ok(Prompt::default()));
        let p: Prompt = "login consent".parse().unwrap();
        assert!(p.login && p.consent && !p.none);
        assert_eq!("none login".parse::<Prompt>(), Err(PromptError::NoneNotAlone));
        assert_eq!("bogus".parse::<Prompt>(), Err(PromptError::Unknown("bogus".into())));
    }
}
