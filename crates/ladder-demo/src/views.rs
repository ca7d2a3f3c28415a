//! The pages (askama templates under `templates/`) and the plain data they show.

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use askama::Template;
use ladder_guard::{LOA1, LOA2, LOA3};

use crate::bank::Account;
use crate::session::{Flash, FlashKind, Identity, Step};
use crate::time::{ago, now, utc};

pub fn render(page: &impl Template, status: StatusCode) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            HttpResponse::InternalServerError().body("The page could not be shown.")
        }
    }
}

pub struct FlashView {
    pub kind: &'static str,
    pub title: String,
    pub body: String,
    pub steps: Vec<Step>,
    /// Step-up stories start unfolded: they are the point of the demo.
    pub open: bool,
}

impl From<Flash> for FlashView {
    fn from(f: Flash) -> FlashView {
        FlashView {
            kind: match f.kind {
                FlashKind::Success => "success",
                FlashKind::Error => "error",
                FlashKind::Info => "info",
            },
            open: f.steps.len() > 1,
            title: f.title,
            body: f.body,
            steps: f.steps,
        }
    }
}

#[derive(Template)]
#[template(path = "landing.html")]
pub struct Landing {
    pub flash: Option<FlashView>,
    pub threshold: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
    pub detail: String,
}

pub struct Rung {
    pub rank: u8,
    pub label: &'static str,
    pub reached: bool,
    pub current: bool,
}

pub struct Method {
    pub code: String,
    pub label: &'static str,
}

pub struct PayeeView {
    pub id: String,
    pub name: String,
    pub account: String,
}

pub struct TransferView {
    pub payee: String,
    pub amount: String,
    pub when: String,
    pub level: u8,
    pub level_label: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct Dashboard {
    pub csrf: String,
    pub name: String,
    pub flash: Option<FlashView>,
    pub balance: String,
    pub payees: Vec<PayeeView>,
    pub transfers: Vec<TransferView>,
    pub threshold: String,
    pub max_age: String,
    pub levels: Vec<Rung>,
    pub acr: String,
    pub amr: Vec<Method>,
    pub auth_time: String,
    pub auth_ago: String,
}

/// Ladder's default levels, with words for people.
pub fn level_rank(acr: Option<&str>) -> u8 {
    match acr {
        Some(LOA3) => 3,
        Some(LOA2) => 2,
        Some(LOA1) => 1,
        _ => 0,
    }
}

fn level_label(rank: u8) -> &'static str {
    match rank {
        3 => "Passkey",
        2 => "Two-step",
        1 => "Password",
        _ => "Unknown",
    }
}

/// RFC 8176 method values, as Ladder emits them.
fn method_label(amr: &str) -> &'static str {
    match amr {
        "pwd" => "password",
        "otp" => "one-time code",
        "mfa" => "multiple factors",
        "hwk" => "hardware-bound key",
        "swk" => "software-bound key",
        "user" => "user verified",
        "pin" => "PIN",
        "fpt" => "fingerprint",
        "face" => "face",
        _ => "other",
    }
}

/// "5 minutes", "1 minute", "90 seconds".
pub fn duration_words(secs: i64) -> String {
    match secs {
        s if s % 60 == 0 && s >= 60 => {
            let m = s / 60;
            format!("{m} minute{}", if m == 1 { "" } else { "s" })
        }
        s => format!("{s} seconds"),
    }
}

impl Dashboard {
    pub fn new(
        csrf: String,
        identity: &Identity,
        account: &Account,
        flash: Option<Flash>,
        threshold: String,
        max_age: i64,
    ) -> Dashboard {
        let rank = level_rank(identity.acr.as_deref());
        let levels = [
            (1, "Password"),
            (2, "Two-step verification"),
            (3, "Passkey"),
        ]
        .into_iter()
        .map(|(r, label)| Rung {
            rank: r,
            label,
            reached: r <= rank,
            current: r == rank,
        })
        .collect();
        let now = now();
        Dashboard {
            csrf,
            name: identity
                .display_name
                .clone()
                .unwrap_or_else(|| identity.sub.clone()),
            flash: flash.map(FlashView::from),
            balance: account.balance.to_string(),
            payees: account
                .payees
                .iter()
                .map(|p| PayeeView {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    account: p.account.clone(),
                })
                .collect(),
            transfers: account
                .transfers
                .iter()
                .map(|t| {
                    let level = level_rank(t.acr.as_deref());
                    TransferView {
                        payee: t.payee.clone(),
                        amount: t.amount.to_string(),
                        when: ago(t.at, now),
                        level,
                        level_label: level_label(level),
                    }
                })
                .collect(),
            threshold,
            max_age: duration_words(max_age),
            levels,
            acr: identity.acr.clone().unwrap_or_else(|| "(none)".into()),
            amr: identity
                .amr
                .iter()
                .map(|m| Method {
                    code: m.clone(),
                    label: method_label(m),
                })
                .collect(),
            auth_time: identity
                .auth_time
                .map_or_else(|| "(not stated)".into(), utc),
            auth_ago: identity.auth_time.map_or_else(String::new, |t| ago(t, now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(duration_words(300), "5 minutes");
        assert_eq!(duration_words(60), "1 minute");
        assert_eq!(duration_words(90), "90 seconds");
        assert_eq!(level_rank(Some(LOA2)), 2);
        assert_eq!(level_rank(Some("phr")), 0);
    }
}
