//! IP bans (`ip_ban: true` on an app-wide ban): the address each user last connected from is
//! kept (app table, `user_ip#<user>`); an IP ban bans that address too (`ip_ban#<address>`,
//! written with the ban), and a connection from a banned address is refused whoever it is for,
//! as is a connection of the IP-banned user from anywhere, until the ban is lifted or ends.

use super::Chat;
use crate::domain::ban::Ban;
use crate::domain::clock::parse_time;
use crate::domain::error::ErrorCode;
use crate::domain::ApiError;
use crate::store::{Condition, Item, TableName, Write};
use serde::{Deserialize, Serialize};

fn last_ip_key(user_id: &str) -> (String, String) {
    (format!("user_ip#{user_id}"), "last".into())
}

fn ip_ban_key(ip: &str) -> (String, String) {
    (format!("ip_ban#{ip}"), "ban".into())
}

#[derive(Debug, Serialize, Deserialize)]
struct LastIp {
    ip: String,
}

/// A banned address: whose ban it came with and when it ends.
#[derive(Debug, Serialize, Deserialize)]
struct IpBan {
    user_id: String,
    #[serde(default)]
    expires: Option<String>,
}

fn refused() -> ApiError {
    ApiError::new(
        ErrorCode::NotAllowed,
        "connections from this IP address are banned",
    )
}

impl Chat {
    /// The address `user_id` last connected from, if they ever did.
    pub(crate) async fn last_ip(&self, user_id: &str) -> Result<Option<String>, ApiError> {
        let (pk, sk) = last_ip_key(user_id);
        Ok(self
            .store
            .get(TableName::App, &pk, &sk)
            .await?
            .and_then(|item| serde_json::from_value::<LastIp>(item.data).ok())
            .map(|l| l.ip))
    }

    /// A connection from `ip` (of `user_id`; `None` for an anonymous one): refused from a
    /// banned address or for an IP-banned user; otherwise the user's address is noted.
    /// One batch read; a write only when the address changed.
    pub(crate) async fn admit_connection(
        &self,
        ip: &str,
        user_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let now = self.now();
        let mut keys = vec![ip_ban_key(ip)];
        if let Some(user_id) = user_id {
            keys.push(last_ip_key(user_id));
            keys.push(super::bans::app_ban_key(user_id));
        }
        let mut last = None;
        for item in self.store.batch_get(TableName::App, &keys).await? {
            if item.pk.starts_with("ip_ban#") {
                let ban: IpBan = super::decode(item.data, "ip ban")?;
                if ban
                    .expires
                    .as_deref()
                    .and_then(parse_time)
                    .is_none_or(|end| end > now)
                {
                    return Err(refused());
                }
            } else if item.pk.starts_with("user_ip#") {
                last = serde_json::from_value::<LastIp>(item.data)
                    .ok()
                    .map(|l| l.ip);
            } else {
                let ban: Ban = super::decode(item.data, "ban")?;
                if ban.ip_ban && ban.is_active(now) {
                    return Err(refused());
                }
            }
        }
        if let Some(user_id) = user_id.filter(|_| last.as_deref() != Some(ip)) {
            let (pk, sk) = last_ip_key(user_id);
            let data = serde_json::json!({ "ip": ip });
            // The last address seen: a blind write (the latest connection is the last known).
            self.store
                .write(Write::Put {
                    table: TableName::App,
                    item: Item::new(pk, sk, data),
                    condition: Condition::None,
                })
                .await?;
        }
        Ok(())
    }
}

/// The write that bans (`on`) or frees the address of an app-wide IP ban, if it has one; it
/// goes in the ban's transaction.
pub(crate) fn ip_ban_write(ban: &Ban, on: bool) -> Result<Option<Write>, ApiError> {
    let Some(ip) = ban
        .ip
        .as_deref()
        .filter(|_| ban.ip_ban && ban.channel_cid.is_none())
    else {
        return Ok(None);
    };
    let (pk, sk) = ip_ban_key(ip);
    if !on {
        return Ok(Some(Write::Delete {
            table: TableName::App,
            pk,
            sk,
            condition: Condition::None,
        }));
    }
    let record = IpBan {
        user_id: ban.target_user_id.clone(),
        expires: ban.expires.clone(),
    };
    let data = serde_json::to_value(&record).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut item = Item::new(pk, sk, data);
    // Gone some time after it ends (it stops applying at its end by itself).
    item.ttl = ban
        .expires
        .as_deref()
        .and_then(parse_time)
        .map(|end| end.timestamp() + 24 * 3600);
    Ok(Some(Write::Put {
        table: TableName::App,
        item,
        condition: Condition::None,
    }))
}
