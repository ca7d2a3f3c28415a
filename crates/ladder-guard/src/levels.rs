//! The ordering of `acr` values, so that a route asking for one level accepts any higher one.

/// Ladder's password-only level.
pub const LOA1: &str = "urn:ladder:loa:1";
/// Ladder's two-factor level.
pub const LOA2: &str = "urn:ladder:loa:2";
/// Ladder's phishing-resistant (passkey) level.
pub const LOA3: &str = "urn:ladder:loa:3";

/// Known `acr` values, lowest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levels(Vec<String>);

impl Levels {
    /// Levels in ascending strength; a duplicate keeps its first (lowest) position.
    pub fn new<I, S>(lowest_first: I) -> Levels
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut levels: Vec<String> = Vec::new();
        for acr in lowest_first {
            let acr = acr.into();
            if !levels.contains(&acr) {
                levels.push(acr);
            }
        }
        Levels(levels)
    }

    /// `urn:ladder:loa:1` < `urn:ladder:loa:2` < `urn:ladder:loa:3`.
    pub fn ladder_defaults() -> Levels {
        Levels::new([LOA1, LOA2, LOA3])
    }

    /// Position of `acr` in the ordering (0 is the lowest), if known.
    pub fn rank(&self, acr: &str) -> Option<usize> {
        self.0.iter().position(|l| l == acr)
    }

    /// Whether a token that presents `presented` meets `required`.
    ///
    /// An unknown presented value meets nothing but itself, so an issuer adding a level the
    /// resource has not heard of never unlocks anything by accident.
    pub fn satisfies(&self, presented: Option<&str>, required: &str) -> bool {
        let Some(presented) = presented else {
            return false;
        };
        match (self.rank(presented), self.rank(required)) {
            (Some(have), Some(need)) => have >= need,
            _ => presented == required,
        }
    }

    /// The values, lowest first.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl Default for Levels {
    fn default() -> Levels {
        Levels::ladder_defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_level_meets_lower_requirement() {
        let levels = Levels::ladder_defaults();
        let cases = [
            (Some(LOA1), LOA1, true),
            (Some(LOA1), LOA2, false),
            (Some(LOA2), LOA2, true),
            (Some(LOA3), LOA2, true),
            (Some(LOA2), LOA3, false),
            (None, LOA1, false),
            (Some("urn:other:gold"), LOA1, false),
            (Some("urn:other:gold"), "urn:other:gold", true),
            (Some(LOA3), "urn:other:gold", false),
        ];
        for (presented, required, expected) in cases {
            assert_eq!(
                levels.satisfies(presented, required),
                expected,
                "{presented:?} vs {required}"
            );
        }
    }

    #[test]
    fn duplicates_keep_their_lowest_position() {
        let levels = Levels::new(["a", "b", "a", "c"]);
        assert_eq!(levels.as_slice(), ["a", "b", "c"]);
    }
}
