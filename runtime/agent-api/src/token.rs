//! The agent token (IPA `IronicPythonAgent.validate_agent_token`): a shared
//! secret Ironic passes as the `agent_token` query parameter on every command
//! route.

use std::sync::RwLock;

use subtle::ConstantTimeEq;

/// Holds the agent's current token, if any.
///
/// An agent without a token rejects every command request: Ironic always
/// issues one at lookup, so a token-less agent has not been adopted yet.
#[derive(Default)]
pub struct TokenHolder {
    token: RwLock<Option<String>>,
}

impl std::fmt::Debug for TokenHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret itself.
        f.debug_struct("TokenHolder")
            .field("held", &self.is_set())
            .finish()
    }
}

impl TokenHolder {
    /// Replaces the token (`None` forgets it; an empty string counts as none).
    pub fn set(&self, token: Option<String>) {
        let token = token.filter(|t| !t.is_empty());
        match self.token.write() {
            Ok(mut guard) => *guard = token,
            Err(poisoned) => *poisoned.into_inner() = token,
        }
    }

    /// Whether a token is held.
    pub fn is_set(&self) -> bool {
        self.read(|t| t.is_some())
    }

    /// IPA's check: `provided` non-empty, a token held, and equal.
    /// The comparison runs in constant time for equal-length inputs.
    pub fn check(&self, provided: Option<&str>) -> bool {
        let Some(provided) = provided.filter(|p| !p.is_empty()) else {
            return false;
        };
        self.read(|held| match held {
            Some(held) => bool::from(held.as_bytes().ct_eq(provided.as_bytes())),
            None => false,
        })
    }

    fn read<R>(&self, f: impl FnOnce(&Option<String>) -> R) -> R {
        match self.token.read() {
            Ok(guard) => f(&guard),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }
}

/// Extracts the first value of `name` from a raw (still encoded) query string.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_token_held_rejects_everything() {
        let t = TokenHolder::default();
        assert!(!t.check(None));
        assert!(!t.check(Some("")));
        assert!(!t.check(Some("x")));
    }

    #[test]
    fn only_the_exact_token_passes() {
        let t = TokenHolder::default();
        t.set(Some("s3cret".into()));
        assert!(t.check(Some("s3cret")));
        assert!(!t.check(Some("s3cre")));
        assert!(!t.check(Some("s3cret!")));
        assert!(!t.check(Some("")));
        assert!(!t.check(None));
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn query_parsing_decodes() {
        assert_eq!(
            query_param(Some("wait=true&agent_token=a%2Bb"), "agent_token").as_deref(),
            Some("a+b")
        );
        assert_eq!(query_param(Some("wait=true"), "agent_token"), None);
        assert_eq!(query_param(None, "wait"), None);
    }
}
