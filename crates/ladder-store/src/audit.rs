//! The audit trail of security events: append-only and hash-chained. Each row carries its position
//! (`seq`), the previous row's hash and its own hash over its canonical content and that previous
//! hash, so an edited, deleted or reordered row breaks the chain and `verify` finds it.
//! Rows are written by the caller's transaction, so no state change commits without its row.

use diesel::prelude::*;

use crate::db::native;
use crate::prepared::prepared;
use crate::schema::{audit_events, audit_head};
use crate::{Conn, StoreError};

/// An event as callers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub outcome: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// JSON object.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = audit_events)]
// A `None` is written as NULL rather than left out, so every insert has the same SQL (prepared once).
#[diesel(treat_none_as_default_value = false)]
pub struct AuditEvent {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub outcome: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// JSON object.
    pub detail: String,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEvent {
    /// The event as one JSON object for exports, with `detail` as an object rather than a string.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["detail"] = serde_json::from_str(&self.detail).unwrap_or(serde_json::Value::Null);
        v
    }

    /// The hash this row must carry: SHA-256 over the previous hash and the row's fields in a
    /// fixed order (a JSON array, so no field can bleed into the next).
    pub fn expected_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.seq,
            self.prev_hash,
            self.id,
            self.at,
            self.kind,
            self.outcome,
            self.user_id,
            self.session_id,
            self.client_id,
            self.ip,
            self.user_agent,
            self.detail,
        ])
        .to_string();
        openssl::sha::sha256(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Appends the event to the chain. Must run inside a write transaction: taking the head row
/// serializes writers, so two transactions can never link to the same predecessor.
pub fn insert_event(conn: &mut Conn, event: &NewEvent) -> Result<(), StoreError> {
    struct AdvanceHead;
    struct SetHeadHash;
    struct InsertEvent;
    let (seq, prev_hash): (i64, String) = native!(conn => prepared::<AdvanceHead, _>(
        diesel::update(audit_head::table.find(1))
            .set(audit_head::seq.eq(audit_head::seq + 1))
            .returning((audit_head::seq, audit_head::hash)),
    )
    .get_result(conn))?;
    let mut row = AuditEvent {
        id: event.id.clone(),
        at: event.at,
        kind: event.kind.clone(),
        outcome: event.outcome.clone(),
        user_id: event.user_id.clone(),
        session_id: event.session_id.clone(),
        client_id: event.client_id.clone(),
        ip: event.ip.clone(),
        user_agent: event.user_agent.clone(),
        detail: event.detail.clone(),
        seq,
        prev_hash,
        hash: String::new(),
    };
    row.hash = row.expected_hash();
    // Read back (`RETURNING`) so that it stays prepared (`prepared.rs`).
    let set_hash = diesel::update(audit_head::table.find(1)).set(audit_head::hash.eq(&row.hash)).returning(audit_head::id);
    native!(conn => prepared::<SetHeadHash, _>(set_hash).get_result::<i32>(conn))?;
    native!(conn => prepared::<InsertEvent, _>(diesel::insert_into(audit_events::table).values(&row)).execute(conn))?;
    Ok(())
}

/// Failed authentication events recorded for the user since `since`.
pub fn count_failures(conn: &mut Conn, user_id: &str, since: i64) -> Result<i64, StoreError> {
    struct CountFailures;
    // Raw SQL in the query: kept prepared by hand.
    Ok(native!(conn => prepared::<CountFailures, _>(recent_failures(user_id, since)).get_result(conn))?)
}

type RecentFailures<'a> = diesel::dsl::Count<
    diesel::dsl::Filter<
        diesel::dsl::Filter<
            diesel::dsl::Filter<audit_events::table, diesel::dsl::Eq<audit_events::user_id, &'a str>>,
            diesel::expression::SqlLiteral<diesel::sql_types::Bool>,
        >,
        diesel::dsl::GtEq<audit_events::at, i64>,
    >,
>;

fn recent_failures(user_id: &str, since: i64) -> RecentFailures<'_> {
    // A literal, not a bound value: the planner takes the partial index of failures only when it
    // can see that the query asks for failures.
    let failures = diesel::dsl::sql::<diesel::sql_types::Bool>("outcome = 'failure'");
    audit_events::table
        .filter(audit_events::user_id.eq(user_id))
        .filter(failures)
        .filter(audit_events::at.ge(since))
        .count()
}

/// Newest first.
pub fn list_events(conn: &mut Conn, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
    Ok(native!(conn => audit_events::table
        .order(audit_events::seq.desc())
        .limit(limit)
        .select(AuditEvent::as_select())
        .load(conn))?)
}

/// Chained events from `since` (epoch seconds) on, oldest first, a page at a time.
pub fn events_since(conn: &mut Conn, since: i64, after_seq: i64, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
    Ok(native!(conn => audit_events::table
        .filter(audit_events::at.ge(since))
        .filter(audit_events::seq.gt(after_seq))
        .order(audit_events::seq.asc())
        .limit(limit)
        .select(AuditEvent::as_select())
        .load(conn))?)
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Break {
    /// The position the chain expected next.
    pub seq: i64,
    /// The row found there (None: missing).
    pub id: Option<String>,
    pub problem: String,
}

/// Walks the chain in order and reports the first broken link, and how many rows it checked.
pub fn verify(conn: &mut Conn) -> Result<(u64, Option<Break>), StoreError> {
    let (mut expected_seq, mut prev) = (1i64, String::new());
    let mut checked = 0u64;
    loop {
        let page = native!(conn => audit_events::table
            .filter(audit_events::seq.ge(expected_seq))
            .order(audit_events::seq.asc())
            .limit(1000)
            .select(AuditEvent::as_select())
            .load(conn))?;
        if page.is_empty() {
            break;
        }
        for row in page {
            let broken = |problem: &str| Some(Break { seq: expected_seq, id: Some(row.id.clone()), problem: problem.into() });
            if row.seq != expected_seq {
                let gap = Break { seq: expected_seq, id: None, problem: format!("row {expected_seq} is missing") };
                return Ok((checked, Some(gap)));
            }
            if row.prev_hash != prev {
                return Ok((checked, broken("does not link to the previous row")));
            }
            if row.hash != row.expected_hash() {
                return Ok((checked, broken("its content does not match its hash (edited)")));
            }
            prev = row.hash.clone();
            expected_seq += 1;
            checked += 1;
        }
    }
    let (head_seq, head_hash): (i64, String) =
        native!(conn => audit_head::table.find(1).select((audit_head::seq, audit_head::hash)).get_result(conn))?;
    if head_seq != expected_seq - 1 || head_hash != prev {
        let tail = Break { seq: expected_seq, id: None, problem: format!("rows after {} are missing", expected_seq - 1) };
        return Ok((checked, Some(tail)));
    }
    Ok((checked, None))
}

/// What the console filters the audit trail by.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub kind: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// Newest first, a page at a time.
pub fn search(conn: &mut Conn, f: &Filter, offset: i64, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
    let mut q = audit_events::table.into_boxed::<crate::db::MultiBackend>();
    if let Some(u) = &f.user_id {
        q = q.filter(audit_events::user_id.eq(u.clone()));
    }
    if let Some(c) = &f.client_id {
        q = q.filter(audit_events::client_id.eq(c.clone()));
    }
    if let Some(k) = &f.kind {
        q = q.filter(audit_events::kind.eq(k.clone()));
    }
    if let Some(o) = &f.outcome {
        q = q.filter(audit_events::outcome.eq(o.clone()));
    }
    if let Some(s) = f.since {
        q = q.filter(audit_events::at.ge(s));
    }
    if let Some(u) = f.until {
        q = q.filter(audit_events::at.lt(u));
    }
    Ok(q.order(audit_events::seq.desc()).offset(offset).limit(limit).select(AuditEvent::as_select()).load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;

    fn event(n: i64, with_user: bool) -> NewEvent {
        let some = |s: &str| with_user.then(|| format!("{s}-{n}"));
        NewEvent {
            id: format!("e{n}"),
            at: n,
            kind: "sign_in".into(),
            outcome: "success".into(),
            user_id: some("user"),
            session_id: some("session"),
            client_id: some("client"),
            ip: some("ip"),
            user_agent: some("agent"),
            detail: "{}".into(),
        }
    }

    /// The insert is prepared once per connection: rows with and without optional fields, in any
    /// order, must each be stored exactly as given and chain.
    #[test]
    fn events_with_and_without_optional_fields_are_stored_as_given_and_chained() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::migrated_in(&dir, 1);
        let events: Vec<NewEvent> = (1..=6).map(|n| event(n, n % 3 != 0)).collect();
        db.write(|conn| events.iter().try_for_each(|e| insert_event(conn, e))).unwrap();
        let stored = db.read(|conn| events_since(conn, 0, 0, 100)).unwrap();
        assert_eq!(stored.len(), events.len());
        for (row, given) in stored.iter().zip(&events) {
            assert_eq!((&row.id, &row.user_id, &row.session_id), (&given.id, &given.user_id, &given.session_id));
            assert_eq!((&row.client_id, &row.ip, &row.user_agent), (&given.client_id, &given.ip, &given.user_agent));
        }
        assert_eq!(db.read(verify).unwrap(), (6, None));
    }

    #[test]
    fn recent_failures_count_one_users_failures_in_the_window_through_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::migrated_in(&dir, 1);
        let at = |n: i64, user: &str, outcome: &str| NewEvent {
            id: format!("e{n}-{user}-{outcome}"),
            user_id: Some(user.into()),
            outcome: outcome.into(),
            ..event(n, false)
        };
        let events = [
            at(10, "alice", "failure"), // before the window
            at(20, "alice", "failure"),
            at(21, "alice", "success"),
            at(22, "bob", "failure"),
            at(30, "alice", "failure"),
        ];
        db.write(|conn| events.iter().try_for_each(|e| insert_event(conn, e))).unwrap();
        assert_eq!(db.read(|conn| count_failures(conn, "alice", 20)).unwrap(), 2);
        assert_eq!(db.read(|conn| count_failures(conn, "bob", 0)).unwrap(), 1);
        assert_eq!(db.read(|conn| count_failures(conn, "carol", 0)).unwrap(), 0);

        // Through the time index, every event of the window (everyone's) would be read.
        #[derive(QueryableByName)]
        struct Step {
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&recent_failures("alice", 20)).to_string();
        let sql = sql.split(" -- binds").next().unwrap().replacen('?', "'alice'", 1).replacen('?', "20", 1);
        let plan: Vec<Step> = db
            .read(|conn| Ok(native!(conn => diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(conn))?))
            .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|s| s.detail).collect();
        assert!(plan.iter().any(|s| s.contains("INDEX audit_events_user_failures")), "{plan:?}");
    }
}
