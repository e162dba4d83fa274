//! Push devices: the tokens a user's apps register (`POST /devices`) for push notifications,
//! with the provider they go through. A user keeps at most 25; registering one more replaces the
//! oldest, as Stream does.

use crate::domain::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Devices one user keeps (Stream's limit).
pub const MAX_DEVICES_PER_USER: usize = 25;
const MAX_ID_LEN: usize = 255;
/// The longest push provider name (Stream's).
pub const MAX_PROVIDER_NAME_LEN: usize = 36;

/// The push services Stream names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushService {
    Apn,
    Firebase,
    Huawei,
    Xiaomi,
}

impl PushService {
    pub fn parse(name: &str) -> Result<PushService, ApiError> {
        match name {
            "apn" => Ok(PushService::Apn),
            "firebase" => Ok(PushService::Firebase),
            "huawei" => Ok(PushService::Huawei),
            "xiaomi" => Ok(PushService::Xiaomi),
            other => Err(ApiError::field(
                "push_provider",
                format!("push_provider {other:?} is not one of apn, firebase, huawei, xiaomi"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PushService::Apn => "apn",
            PushService::Firebase => "firebase",
            PushService::Huawei => "huawei",
            PushService::Xiaomi => "xiaomi",
        }
    }
}

/// One registered device, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// The push token.
    pub id: String,
    pub push_provider: PushService,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_provider_name: Option<String>,
    pub user_id: String,
    pub created_at: String,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// An Apple VoIP token.
    #[serde(default)]
    pub voip: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_id: Option<String>,
    /// Its SNS platform endpoint, when pushes go through SNS (never on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns_endpoint: Option<SnsEndpoint>,
}

/// A device's SNS platform endpoint, and the platform application it was made under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnsEndpoint {
    pub application: String,
    pub arn: String,
}

/// `POST /devices` (and a connect's `device`): what the caller sends.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewDevice {
    pub id: String,
    pub push_provider: String,
    pub push_provider_name: Option<String>,
    pub voip_token: Option<bool>,
    pub hardware_id: Option<String>,
    /// Server-side: whose device.
    pub user_id: Option<String>,
    pub user: Option<serde_json::Map<String, Value>>,
}

impl NewDevice {
    /// The device it registers for `user_id`, checked.
    pub fn into_device(self, user_id: &str, now: &str) -> Result<Device, ApiError> {
        if self.id.is_empty() || self.id.len() > MAX_ID_LEN {
            return Err(ApiError::field(
                "id",
                format!("id (the device token) must be 1 to {MAX_ID_LEN} characters"),
            ));
        }
        let push_provider = PushService::parse(&self.push_provider)?;
        let name = self.push_provider_name.filter(|n| !n.is_empty());
        if name
            .as_ref()
            .is_some_and(|n| n.len() > MAX_PROVIDER_NAME_LEN)
        {
            return Err(ApiError::field(
                "push_provider_name",
                format!("push_provider_name is longer than {MAX_PROVIDER_NAME_LEN} characters"),
            ));
        }
        let hardware_id = self.hardware_id.filter(|h| !h.is_empty());
        if hardware_id.as_ref().is_some_and(|h| h.len() > MAX_ID_LEN) {
            return Err(ApiError::field(
                "hardware_id",
                format!("hardware_id is longer than {MAX_ID_LEN} characters"),
            ));
        }
        Ok(Device {
            id: self.id,
            push_provider,
            push_provider_name: name,
            user_id: user_id.to_string(),
            created_at: now.to_string(),
            disabled: false,
            disabled_reason: None,
            voip: self.voip_token.unwrap_or(false),
            hardware_id,
            sns_endpoint: None,
        })
    }
}

impl Device {
    /// Stream's `DeviceResponse`.
    pub fn to_wire(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "push_provider": self.push_provider.as_str(),
            "user_id": self.user_id,
            "created_at": self.created_at,
            "disabled": self.disabled,
            "voip": self.voip,
        });
        if let Some(n) = &self.push_provider_name {
            v["push_provider_name"] = n.clone().into();
        }
        if let Some(r) = &self.disabled_reason {
            v["disabled_reason"] = r.clone().into();
        }
        if let Some(h) = &self.hardware_id {
            v["hardware_id"] = h.clone().into();
        }
        v
    }
}

/// The devices to drop so that `devices` (with a new one) keeps the limit: the oldest first.
pub fn over_the_limit(devices: &[Device]) -> Vec<&Device> {
    if devices.len() <= MAX_DEVICES_PER_USER {
        return Vec::new();
    }
    let mut by_age: Vec<&Device> = devices.iter().collect();
    by_age.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    by_age.truncate(devices.len() - MAX_DEVICES_PER_USER);
    by_age
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(id: &str, provider: &str) -> NewDevice {
        NewDevice {
            id: id.into(),
            push_provider: provider.into(),
            ..Default::default()
        }
    }

    #[test]
    fn devices_are_checked() {
        let d = new("tok", "apn").into_device("u", "t").unwrap();
        assert_eq!(d.to_wire()["push_provider"], "apn");
        assert_eq!(d.to_wire()["voip"], false);
        assert!(new("", "apn").into_device("u", "t").is_err());
        assert!(new(&"x".repeat(256), "apn").into_device("u", "t").is_err());
        assert!(new("tok", "gcm").into_device("u", "t").is_err());
        let mut named = new("tok", "firebase");
        named.push_provider_name = Some(String::new());
        assert_eq!(
            named.into_device("u", "t").unwrap().push_provider_name,
            None
        );
        let mut long = new("tok", "firebase");
        long.push_provider_name = Some("n".repeat(37));
        assert!(long.into_device("u", "t").is_err());
    }

    #[test]
    fn the_oldest_go_past_the_limit() {
        let devices: Vec<Device> = (0..27)
            .map(|i| {
                new(&format!("d{i:02}"), "apn")
                    .into_device("u", &format!("2026-01-01T00:00:{i:02}Z"))
                    .unwrap()
            })
            .collect();
        let gone: Vec<&str> = over_the_limit(&devices)
            .iter()
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(gone, ["d00", "d01"]);
        assert!(over_the_limit(&devices[..25]).is_empty());
    }
}
