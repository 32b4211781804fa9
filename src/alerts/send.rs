//! Delivery of one alert: a webhook POST (generic JSON, Microsoft Teams
//! Adaptive Card or Slack) and/or an e-mail over SMTP (lettre, rustls;
//! STARTTLS by default). Each channel is tried `alerts.attempts` times with
//! a growing pause; failures are logged with the channel and what to do.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};

use super::{Alert, Severity};
use crate::config::Loaded;
use crate::config::alerts::{Alerts, SmtpTls, WebhookFormat};

/// The webhook body in the configured format.
pub fn webhook_body(l: &Loaded, format: WebhookFormat, a: &Alert) -> Value {
    let inst = &l.config.institution;
    match format {
        WebhookFormat::Json => json!({
            "source": "sisync",
            "institution": inst.name,
            "brin": inst.brin,
            "alert": a.key,
            "severity": a.severity,
            "title": a.title,
            "text": a.text,
            "facts": a.facts.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
        WebhookFormat::Slack => {
            let icon = match a.severity {
                Severity::Critical => ":rotating_light:",
                Severity::Warning => ":warning:",
                Severity::Info => ":information_source:",
            };
            let facts: Vec<String> = a.facts.iter().map(|(k, v)| format!("• {k}: {v}")).collect();
            json!({
                "text": format!("{icon} *{}*\n{}\n{}", a.title, a.text, facts.join("\n")),
            })
        }
        WebhookFormat::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": a.title,
                            "weight": "Bolder",
                            "size": "Medium",
                            "wrap": true,
                            "color": match a.severity {
                                Severity::Critical => "Attention",
                                Severity::Warning => "Warning",
                                Severity::Info => "Default",
                            },
                        },
                        { "type": "TextBlock", "text": a.text, "wrap": true },
                        {
                            "type": "FactSet",
                            "facts": a.facts.iter().map(|(k, v)| json!({"title": k, "value": v})).collect::<Vec<_>>(),
                        },
                    ],
                },
            }],
        }),
    }
}

/// The e-mail body: plain text.
pub fn email_text(a: &Alert) -> String {
    let mut s = format!("{}\n\n", a.text);
    for (k, v) in &a.facts {
        s.push_str(&format!("{k}: {v}\n"));
    }
    s.push_str("\n-- \nsisync (counts and record ids only; details: `sisync status`)\n");
    s
}

async fn with_retries<F, Fut>(attempts: u32, mut f: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut last = String::new();
    for i in 0..attempts.max(1) {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(500 << (i - 1).min(5))).await;
        }
        match f().await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn post_webhook(l: &Loaded, a: &Alerts, alert: &Alert, url: &str) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(a.timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let body = webhook_body(l, a.format, alert);
    // the URL holds the webhook's secret: messages name its host only
    let host = crate::telemetry::endpoint_label(url);
    with_retries(a.attempts, || async {
        match client.post(url).json(&body).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!(
                "webhook {host} answered HTTP {}",
                r.status().as_u16()
            )),
            Err(e) => Err(format!(
                "webhook {host} did not answer ({})",
                e.without_url()
            )),
        }
    })
    .await
}

async fn send_email(l: &Loaded, a: &Alerts, alert: &Alert) -> Result<(), String> {
    let Some(e) = &a.email else { return Ok(()) };
    let password = l.smtp_password().map_err(|e| e.to_string())?;
    let builder = match e.tls {
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.smtp_host),
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&e.smtp_host),
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &e.smtp_host,
        )),
    }
    .map_err(|err| format!("SMTP {}: {err}", e.smtp_host))?;
    let mut builder = builder.port(e.smtp_port).timeout(Some(a.timeout));
    if let (Some(user), Some(pw)) = (&e.username, password) {
        builder = builder.credentials(Credentials::new(user.clone(), pw.expose().to_string()));
    }
    let transport = builder.build();
    let mut m = Message::builder()
        .from(
            e.from
                .parse()
                .map_err(|err| format!("alerts.email.from: {err}"))?,
        )
        .subject(&alert.title)
        .header(ContentType::TEXT_PLAIN);
    for to in &e.to {
        m = m.to(to
            .parse()
            .map_err(|err| format!("alerts.email.to: {err}"))?);
    }
    let msg = m
        .body(email_text(alert))
        .map_err(|err| format!("cannot build the e-mail: {err}"))?;
    let server = format!("{}:{}", e.smtp_host, e.smtp_port);
    with_retries(a.attempts, || async {
        transport
            .send(msg.clone())
            .await
            .map(|_| ())
            .map_err(|err| format!("SMTP {server}: {err}"))
    })
    .await
}

/// Send through every configured channel; true when at least one took it.
pub async fn deliver(l: &Loaded, a: &Alerts, alert: &Alert) -> bool {
    let mut any = false;
    match l.alert_webhook_url() {
        Ok(Some(url)) => match post_webhook(l, a, alert, url.expose()).await {
            Ok(()) => any = true,
            Err(e) => tracing::error!(
                alert = %alert.key,
                "alert not delivered: {e}; check alerts.webhook_url_file and the receiver (`sisync alerts test`)"
            ),
        },
        Ok(None) => {}
        Err(e) => tracing::error!(alert = %alert.key, "alert not delivered: {e}"),
    }
    if a.email.is_some() {
        match send_email(l, a, alert).await {
            Ok(()) => any = true,
            Err(e) => tracing::error!(
                alert = %alert.key,
                "alert e-mail not delivered: {e}; check [alerts.email] and the SMTP relay (`sisync alerts test`)"
            ),
        }
    }
    if any {
        tracing::info!(alert = %alert.key, "alert sent");
    }
    any
}
