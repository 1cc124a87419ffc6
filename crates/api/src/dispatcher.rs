//! Delivers the outbox's change events to the configured webhook: at least once, in order
//! per customer, signed, with retries and back-off. Any number of dispatchers (one per
//! replica, or `identity-api dispatch`) can run at once: each event is claimed by one of them
//! for a lease longer than a delivery may take, so no event is delivered by two at once.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hmac::{Hmac, Mac};
use identity_persistence::{redact_url, Outbox, OutboxRow};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::settings::{EventSettings, Webhook};

/// The signature header: `sha256=<hex HMAC-SHA256 of the raw body under events.secret>`.
pub const SIGNATURE_HEADER: &str = "X-Identity-Signature";

pub struct Dispatcher {
    outbox: Arc<dyn Outbox>,
    webhook: Webhook,
    agent: ureq::Agent,
    max_attempts: NonZeroU32,
    max_age: Duration,
}

impl Dispatcher {
    /// A dispatcher to `webhook`, giving up on an event as `events` says.
    pub fn new(outbox: Arc<dyn Outbox>, webhook: &Webhook, events: &EventSettings) -> Self {
        // Redirects are not followed: following one would turn the POST into a GET (301,
        // 302, 303), count the redirect target's 2xx as a delivery and send the signature
        // to another host. With `max_redirects(0)` a 3xx comes back as a response, and
        // anything but a 2xx is a failed delivery, retried later.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(webhook.request_timeout))
            .build()
            .into();
        Self {
            outbox,
            webhook: webhook.clone(),
            agent,
            max_attempts: events.max_attempts,
            max_age: events.max_age,
        }
    }

    /// Runs on a thread of its own until `stop` is set.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("event-dispatcher".to_owned())
            .spawn(move || {
                tracing::info!(url = %redact_url(&self.webhook.url), "event dispatcher started");
                while !stop.load(Ordering::Relaxed) {
                    if self.run_once() == 0 {
                        std::thread::sleep(self.webhook.poll_interval);
                    }
                }
            })
    }

    /// Gives up on events older than `events.max_age_hours` and deletes delivered and dead
    /// ones older than `events.retention_hours`, once a minute on a thread of its own, until
    /// `stop` (every replica runs it, with or without a webhook: the outbox stays bounded).
    pub fn spawn_janitor(
        outbox: Arc<dyn Outbox>,
        settings: &EventSettings,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        let (max_age, retention) = (settings.max_age, settings.retention);
        std::thread::Builder::new()
            .name("outbox-janitor".to_owned())
            .spawn(move || {
                let mut due = std::time::Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if std::time::Instant::now() >= due {
                        due = std::time::Instant::now() + Duration::from_secs(60);
                        match outbox.expire(max_age, retention) {
                            Ok((0, 0)) => {}
                            Ok((given_up, deleted)) => {
                                tracing::info!(given_up, deleted, "outbox expired and pruned")
                            }
                            Err(error) => tracing::warn!(%error, "cannot prune the outbox"),
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
    }

    /// Claims and delivers one round of events; returns how many it handled.
    pub fn run_once(&self) -> usize {
        // Longer than any delivery of the round can take, so the claim never lapses while
        // this dispatcher is still delivering.
        let batch = self.webhook.batch_size.get();
        let lease = self
            .webhook
            .request_timeout
            .saturating_mul(u32::try_from(batch + 1).unwrap_or(u32::MAX))
            .saturating_add(Duration::from_secs(10));
        let events = match self.outbox.claim(batch, lease) {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, "cannot claim events");
                return 0;
            }
        };
        for event in &events {
            self.deliver(event);
        }
        events.len()
    }

    fn deliver(&self, event: &OutboxRow) {
        let body = envelope(event).to_string();
        let outcome = self
            .agent
            .post(&self.webhook.url)
            .header("Content-Type", "application/json")
            .header("X-Identity-Event-Id", event.id.to_string())
            .header(
                SIGNATURE_HEADER,
                sign(
                    self.webhook.secret.expose_secret().as_bytes(),
                    body.as_bytes(),
                ),
            )
            .send(body.as_str());
        let failure = match outcome {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("the webhook answered {}", response.status())),
            // The error may quote the URL, and it is logged and stored: redact it there too.
            Err(error) => Some(
                error
                    .to_string()
                    .replace(self.webhook.url.as_str(), &redact_url(&self.webhook.url)),
            ),
        };
        let settled = match failure {
            None => {
                metrics::counter!("identity_events_delivered_total", "type" => event.kind.clone())
                    .increment(1);
                self.outbox.delivered(event.id)
            }
            Some(error) => {
                metrics::counter!("identity_event_delivery_failures_total").increment(1);
                let attempts = event.attempts.saturating_add(1);
                let too_old = chrono::Utc::now()
                    .signed_duration_since(event.created_at)
                    .to_std()
                    .is_ok_and(|age| age > self.max_age);
                let give_up =
                    u32::try_from(attempts).is_ok_and(|a| a >= self.max_attempts.get()) || too_old;
                let retry_in = (!give_up).then(|| self.backoff(event.attempts));
                if give_up {
                    metrics::counter!("identity_events_dead_total").increment(1);
                    tracing::warn!(event = event.id, attempts, %error, "event delivery failed; giving up on the event (identity-api events list)");
                } else {
                    tracing::warn!(event = event.id, attempts, %error, ?retry_in, "event delivery failed");
                }
                self.outbox.failed(event.id, &error, retry_in)
            }
        };
        if let Err(error) = settled {
            // The claim lapses and the event is delivered again: at least once.
            tracing::warn!(event = event.id, %error, "cannot record the delivery outcome");
        }
    }

    /// 1 s, 2 s, 4 s, ... at most `events.max_backoff_secs`, with jitter.
    fn backoff(&self, attempts: i32) -> Duration {
        let exponent = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
        let bound = Duration::from_secs(1u64 << exponent).min(self.webhook.max_backoff);
        bound.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

/// The JSON body a webhook receives.
pub fn envelope(event: &OutboxRow) -> Value {
    let occurred_at = crate::wire_time(event.created_at);
    json!({
        "id": event.id,
        "type": event.kind,
        "customerId": event.customer_id,
        "occurredAt": occurred_at,
        "data": serde_json::from_str::<Value>(&event.payload).unwrap_or(Value::Null),
    })
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}
