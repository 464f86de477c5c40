//! What a plugin answers for one event: a new body, drop the delivery, or pass the
//! body through unchanged. Each maps to one return code of `gatepulse_transform`.

use serde::Serialize;
use serde_json::Value;

use crate::Error;

/// A plugin's answer (errors are the `Err` side of its `Result`).
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this value, serialized as JSON, as the new body (return code 0, EMIT).
    Emit(Value),
    /// Send nothing for this delivery (return code 1, DROP).
    Drop,
    /// Send the body unchanged (return code 2, PASS). Cheaper than re-emitting the
    /// same value: nothing is serialized or copied back.
    Pass,
}

impl Output {
    /// `Emit` of any serializable value.
    pub fn emit<T: Serialize + ?Sized>(body: &T) -> Result<Self, Error> {
        Ok(Self::Emit(serde_json::to_value(body)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emit_serializes_structs() {
        #[derive(Serialize)]
        struct Body {
            id: u32,
        }
        assert_eq!(
            Output::emit(&Body { id: 3 }),
            Ok(Output::Emit(json!({"id": 3})))
        );
    }
}
