//! The parameters of an OAuth request, as the protocol reads them.

/// Request parameters with every name present at most once (RFC 6749 §3.1: a
/// repeated parameter makes the request invalid).
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

/// The largest number of parameters an OAuth request may carry.
const MAX_PARAMS: usize = 64;

impl Params {
    /// Fails with the first repeated name.
    pub fn unique(pairs: Vec<(String, String)>) -> Result<Self, String> {
        if pairs.len() > MAX_PARAMS {
            return Err("too many parameters".to_owned());
        }
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(format!("parameter `{name}` is repeated"));
            }
        }
        Ok(Self(pairs))
    }

    /// A parameter's value; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The parameters without `name`, for re-sending a request.
    pub fn without(&self, names: &[&str]) -> Params {
        Params(
            self.0
                .iter()
                .filter(|(n, _)| !names.contains(&n.as_str()))
                .cloned()
                .collect(),
        )
    }

    pub fn with(mut self, name: &str, value: &str) -> Params {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn to_query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.0.iter())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let err = Params::unique(pairs(&[("a", "1"), ("b", "2"), ("a", "3")])).unwrap_err();
        assert!(err.contains("`a`"));
        let ok = Params::unique(pairs(&[("a", "1"), ("b", "")])).unwrap();
        assert_eq!(ok.get("a"), Some("1"));
        assert_eq!(ok.get("b"), None, "empty means absent");
    }
}
