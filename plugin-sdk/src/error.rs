//! The error a plugin returns: a message for the delivery's attempt record. It carries
//! text only, because text is all that crosses the ABI (the `error` import).

use std::fmt;

/// A plugin failure; the delivery fails with this message (the host keeps 1 KiB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with this message.
    pub fn msg(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self { message }
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::msg(message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::msg(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constructor_keeps_the_message() {
        assert_eq!(Error::msg("a").message(), "a");
        assert_eq!(Error::from("b").to_string(), "b");
        assert_eq!(Error::from(String::from("c")).message(), "c");
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        assert_eq!(
            Error::from(json).message(),
            "expected value at line 1 column 1"
        );
    }

    #[test]
    fn question_mark_converts_serde_errors() {
        fn parse(text: &str) -> Result<u8, Error> {
            Ok(serde_json::from_str(text)?)
        }
        assert_eq!(parse("7"), Ok(7));
        assert!(parse("[]").is_err());
    }
}
