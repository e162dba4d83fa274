//! What a push carries: Stream's standard data payload (`version: v2`, `sender: stream.chat`…),
//! and per service the default alert of Stream's v3 templates (title from the sender, body the
//! text truncated to 150 characters, badge the receiver's unread count). `POST /check_push`
//! renders the same.

use serde_json::{json, Map, Value};

/// The longest body of an alert, in characters (Stream's default templates).
const BODY_CHARS: usize = 150;

/// One push to one receiver, before it is shaped for a service.
#[derive(Clone, Debug)]
pub struct Push {
    pub event_type: String,
    pub message_id: String,
    pub cid: String,
    pub receiver_id: String,
    pub sender_name: String,
    pub text: String,
    /// The receiver's unread messages (the badge).
    pub badge: u64,
}

fn truncate(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

impl Push {
    /// Builds the push of a message event for a receiver.
    pub fn of_message(event_type: &str, message: &Value, receiver_id: &str, badge: u64) -> Push {
        let user = &message["user"];
        let sender_name = user["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .or_else(|| user["id"].as_str())
            .unwrap_or_default()
            .to_string();
        Push {
            event_type: event_type.to_string(),
            message_id: message["id"].as_str().unwrap_or_default().to_string(),
            cid: message["cid"].as_str().unwrap_or_default().to_string(),
            receiver_id: receiver_id.to_string(),
            sender_name,
            text: message["text"].as_str().unwrap_or_default().to_string(),
            badge,
        }
    }

    /// Stream's standard data payload (every value a string).
    pub fn data(&self) -> Map<String, Value> {
        let (channel_type, channel_id) = self.cid.split_once(':').unwrap_or(("", ""));
        let mut data = Map::new();
        for (k, v) in [
            ("sender", "stream.chat"),
            ("type", self.event_type.as_str()),
            ("version", "v2"),
            ("message_id", self.message_id.as_str()),
            ("id", self.message_id.as_str()),
            ("channel_type", channel_type),
            ("channel_id", channel_id),
            ("cid", self.cid.as_str()),
            ("receiver_id", self.receiver_id.as_str()),
        ] {
            data.insert(k.into(), Value::String(v.to_string()));
        }
        data
    }

    fn alert(&self) -> Value {
        json!({
            "title": format!("New message from {}", self.sender_name),
            "body": truncate(&self.text, BODY_CHARS),
        })
    }

    fn aps(&self) -> Value {
        json!({
            "alert": self.alert(),
            "badge": self.badge,
            "sound": "default",
            "mutable-content": 1,
            "content-available": 0,
        })
    }

    /// The body of an APNs request: `aps` and Stream's data under `stream`.
    pub fn apns(&self) -> Value {
        json!({ "aps": self.aps(), "stream": self.data() })
    }

    /// The `message` of an FCM HTTP v1 send (without its `token`): data for Android, an alert
    /// for iOS apps through Firebase.
    pub fn fcm(&self) -> Value {
        json!({
            "data": self.data(),
            "android": { "priority": "high" },
            "apns": { "payload": { "aps": self.aps() } },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_carry_streams_payload() {
        let message = json!({"id": "m1", "cid": "messaging:c", "text": "é".repeat(200), "user": {"id": "ann", "name": "Ann"}});
        let p = Push::of_message("message.new", &message, "bob", 3);
        let data = p.data();
        assert_eq!(data["channel_id"], "c");
        assert_eq!(data["receiver_id"], "bob");
        assert_eq!(data["version"], "v2");
        let apns = p.apns();
        assert_eq!(apns["aps"]["badge"], 3);
        assert_eq!(apns["aps"]["alert"]["title"], "New message from Ann");
        let body = apns["aps"]["alert"]["body"].as_str().unwrap_or_default();
        assert_eq!(body.chars().count(), 153);
        assert_eq!(p.fcm()["data"]["message_id"], "m1");
    }
}
