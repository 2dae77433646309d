//! Values interned to small integers, so a model step compares integers (DESIGN §3.1).

use std::collections::HashMap;

use serde_json::Value;

/// A table of the distinct values of one object's operations. `null` is always 0.
#[derive(Debug)]
pub(crate) struct Interner {
    ids: HashMap<String, u32>,
    values: Vec<Value>,
}

impl Interner {
    pub(crate) const NULL: u32 = 0;

    pub(crate) fn new() -> Self {
        let mut interner = Interner {
            ids: HashMap::new(),
            values: Vec::new(),
        };
        interner.intern(&Value::Null);
        interner
    }

    /// The id of `value`, giving it one if it has none. Equal JSON values get equal ids.
    pub(crate) fn intern(&mut self, value: &Value) -> u32 {
        let text = value.to_string();
        if let Some(&id) = self.ids.get(&text) {
            return id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        self.ids.insert(text, id);
        self.values.push(value.clone());
        id
    }

    /// The value behind an id.
    pub(crate) fn value(&self, id: u32) -> &Value {
        &self.values[id as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_share_an_id() {
        let mut interner = Interner::new();
        assert_eq!(interner.intern(&json!(null)), Interner::NULL);
        let a = interner.intern(&json!({"x": [1, 2]}));
        assert_eq!(interner.intern(&json!({"x": [1, 2]})), a);
        assert_ne!(interner.intern(&json!("1")), interner.intern(&json!(1)));
        assert_eq!(interner.value(a), &json!({"x": [1, 2]}));
    }
}
