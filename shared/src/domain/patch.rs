//! Stream's partial-update rules (`set` / `unset` with dotted paths) on JSON documents, used
//! for users, channels, messages, members and threads alike.

use serde_json::{Map, Value};

/// Set `value` at a dotted `path`, creating intermediate objects (and replacing non-objects).
pub fn set_path(doc: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = doc;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(part.to_string(), value);
            return;
        }
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        cur = match entry {
            Value::Object(m) => m,
            _ => return,
        };
    }
}

/// Remove the value at a dotted `path`; missing paths are ignored.
pub fn unset_path(doc: &mut Map<String, Value>, path: &str) {
    match path.split_once('.') {
        None => {
            doc.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Value::Object(inner)) = doc.get_mut(head) {
                unset_path(inner, rest);
            }
        }
    }
}

/// The top-level field a dotted path touches.
pub fn top_field(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_and_unset_follow_dotted_paths() {
        let mut doc = json!({"a": 1, "field": {"text": "x", "keep": true}})
            .as_object()
            .cloned()
            .unwrap();
        set_path(&mut doc, "field2.subfield", json!("test"));
        set_path(&mut doc, "a.b", json!(2));
        unset_path(&mut doc, "field.text");
        unset_path(&mut doc, "missing.path");
        assert_eq!(
            Value::Object(doc),
            json!({"a": {"b": 2}, "field": {"keep": true}, "field2": {"subfield": "test"}})
        );
    }
}
