//! The names of the customer's AWS resources a hook points at: SQS queue URLs and SNS topic
//! ARNs, checked when settings are saved and taken apart when events are sent.

/// An AWS account id: digits (12 in AWS; emulators and examples use fewer).
fn is_account_id(s: &str) -> bool {
    (1..=12).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// A queue URL's endpoint (scheme, host and port) and, for AWS's own hosts, its region. A queue
/// URL is `<endpoint>/<account id>/<queue name>`.
pub fn sqs_endpoint(queue_url: &str) -> Option<(String, Option<String>)> {
    let (scheme, rest) = queue_url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let (host, path) = rest.split_once('/')?;
    let mut parts = path.trim_end_matches('/').split('/');
    let (account, name) = (parts.next()?, parts.next()?);
    if parts.next().is_some()
        || host.is_empty()
        || !is_account_id(account)
        || name.is_empty()
        || name.len() > 80
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return None;
    }
    let hostname = host.split(':').next().unwrap_or(host);
    let region = hostname
        .strip_prefix("sqs.")
        .and_then(|h| h.split('.').next())
        .or_else(|| hostname.strip_suffix(".queue.amazonaws.com"))
        .filter(|r| hostname.ends_with(".amazonaws.com") && !r.is_empty())
        .map(str::to_string);
    Some((format!("{scheme}://{host}"), region))
}

/// The region of an SNS topic ARN (`arn:aws:sns:<region>:<account>:<name>`).
pub fn sns_region(topic_arn: &str) -> Option<String> {
    let parts: Vec<&str> = topic_arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "sns", region, account, name]
            if !partition.is_empty()
                && !region.is_empty()
                && is_account_id(account)
                && !name.is_empty() =>
        {
            Some(region.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls() {
        assert_eq!(
            sqs_endpoint("https://sqs.eu-west-1.amazonaws.com/123456789012/chat-events"),
            Some((
                "https://sqs.eu-west-1.amazonaws.com".into(),
                Some("eu-west-1".into())
            ))
        );
        assert_eq!(
            sqs_endpoint("http://127.0.0.1:5000/123456789012/q.fifo"),
            Some(("http://127.0.0.1:5000".into(), None))
        );
        assert_eq!(sqs_endpoint("https://foo.com/bar"), None);
        assert_eq!(sqs_endpoint("ftp://sqs.x/123456789012/q"), None);
    }

    #[test]
    fn topic_arns() {
        assert_eq!(
            sns_region("arn:aws:sns:us-east-2:123456789012:events"),
            Some("us-east-2".into())
        );
        assert_eq!(sns_region("arn:aws:sns:us-east-2:x1:events"), None);
        assert_eq!(sns_region("not-an-arn"), None);
    }
}
