//! Second factors: TOTP credentials and recovery codes, and which factors a user has enrolled.

use diesel::prelude::*;
use ladder_core::Factor;

use crate::db::native;
use crate::prepared::prepared;
use crate::schema::{recovery_codes, totp_credentials, users};
use crate::{Conn, StoreError, new_id};

#[derive(Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = totp_credentials)]
pub struct TotpCredential {
    pub user_id: String,
    pub secret_enc: String,
    pub confirmed: bool,
    pub last_step: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl std::fmt::Debug for TotpCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpCredential")
            .field("user_id", &self.user_id)
            .field("confirmed", &self.confirmed)
            .finish_non_exhaustive()
    }
}

/// Whether the user holds each factor, in [`Factor`] order: password, TOTP, recovery code, passkey.
pub type Held = (bool, bool, bool, bool);

type HeldSql = diesel::expression::SqlLiteral<diesel::sql_types::Bool>;

/// [`Held`] as four expressions over the `users` row of a query, so that a session read gets its
/// user's factors in the same statement. Raw SQL: diesel cannot type a subquery that refers to
/// the outer row, so the queries using it are kept prepared by hand.
pub(crate) fn held() -> (HeldSql, HeldSql, HeldSql, HeldSql) {
    use diesel::dsl::sql;
    (
        sql("EXISTS (SELECT 1 FROM password_credentials p WHERE p.user_id = users.id)"),
        sql("EXISTS (SELECT 1 FROM totp_credentials t WHERE t.user_id = users.id AND t.confirmed)"),
        sql("EXISTS (SELECT 1 FROM recovery_codes r WHERE r.user_id = users.id AND r.used_at IS NULL)"),
        sql("EXISTS (SELECT 1 FROM passkeys k WHERE k.user_id = users.id)"),
    )
}

/// The factors named by [`Held`].
pub fn held_factors((password, totp, recovery, passkey): Held) -> Vec<Factor> {
    let held = [
        (Factor::Password, password),
        (Factor::Totp, totp),
        (Factor::RecoveryCode, recovery),
        (Factor::Passkey, passkey),
    ];
    held.into_iter().filter_map(|(factor, held)| held.then_some(factor)).collect()
}

/// The factors the user can be asked to prove now, in one statement (none for an unknown user).
pub fn enrolled(conn: &mut Conn, user_id: &str) -> Result<Vec<Factor>, StoreError> {
    struct Enrolled;
    let query = users::table.find(user_id).select(held());
    let held: Option<Held> = native!(conn => prepared::<Enrolled, _>(query).get_result(conn).optional())?;
    Ok(held.map(held_factors).unwrap_or_default())
}

pub fn find_totp(conn: &mut Conn, user_id: &str) -> Result<Option<TotpCredential>, StoreError> {
    Ok(native!(conn => totp_credentials::table
        .find(user_id)
        .select(TotpCredential::as_select())
        .get_result(conn)
        .optional())?)
}

/// Stores a pending (unconfirmed) secret, replacing an earlier pending one. Refuses to replace a
/// confirmed credential: that is a factor reset, which needs its own, stronger path.
pub fn upsert_pending_totp(conn: &mut Conn, user_id: &str, secret_enc: &str, now: i64) -> Result<(), StoreError> {
    match find_totp(conn, user_id)? {
        Some(t) if t.confirmed => Err(StoreError::Conflict("a confirmed TOTP credential".into())),
        Some(_) => {
            native!(conn => diesel::update(totp_credentials::table.find(user_id))
                .set((totp_credentials::secret_enc.eq(secret_enc), totp_credentials::created_at.eq(now)))
                .execute(conn))?;
            Ok(())
        }
        None => {
            native!(conn => diesel::insert_into(totp_credentials::table)
                .values((
                    totp_credentials::user_id.eq(user_id),
                    totp_credentials::secret_enc.eq(secret_enc),
                    totp_credentials::confirmed.eq(false),
                    totp_credentials::last_step.eq(0i64),
                    totp_credentials::created_at.eq(now),
                ))
                .execute(conn))?;
            Ok(())
        }
    }
}

/// Accepts time step `step` for the user, once: true only if no step ≥ `step` was accepted before
/// (one conditional UPDATE, so two nodes or two tabs cannot both accept the same code).
/// `confirm` also completes a pending enrolment.
pub fn accept_totp_step(conn: &mut Conn, user_id: &str, step: i64, confirm: bool, now: i64) -> Result<bool, StoreError> {
    let target = totp_credentials::table
        .filter(totp_credentials::user_id.eq(user_id))
        .filter(totp_credentials::last_step.lt(step))
        .filter(totp_credentials::confirmed.eq(!confirm));
    struct AcceptStep;
    // Read back (`RETURNING`) so that it stays prepared (`prepared.rs`).
    let accept = diesel::update(target)
        .set((
            totp_credentials::last_step.eq(step),
            totp_credentials::last_used_at.eq(now),
            totp_credentials::confirmed.eq(true),
        ))
        .returning(totp_credentials::user_id);
    Ok(native!(conn => prepared::<AcceptStep, _>(accept).get_result::<String>(conn).optional())?.is_some())
}

pub fn delete_totp(conn: &mut Conn, user_id: &str) -> Result<(), StoreError> {
    native!(conn => diesel::delete(totp_credentials::table.find(user_id)).execute(conn))?;
    native!(conn => diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn))?;
    Ok(())
}

/// Replaces the user's recovery codes with these hashes.
pub fn replace_recovery_codes(conn: &mut Conn, user_id: &str, hashes: &[String], now: i64) -> Result<(), StoreError> {
    native!(conn => diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn))?;
    for hash in hashes {
        native!(conn => diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::id.eq(new_id()),
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(hash),
                recovery_codes::created_at.eq(now),
            ))
            .execute(conn))?;
    }
    Ok(())
}

/// Marks the code used, once (conditional UPDATE); true when this call used it.
pub fn use_recovery_code(conn: &mut Conn, user_id: &str, code_hash: &str, now: i64) -> Result<bool, StoreError> {
    let updated = native!(conn => diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(code_hash))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(now))
    .execute(conn))?;
    Ok(updated == 1)
}

pub fn unused_recovery_codes(conn: &mut Conn, user_id: &str) -> Result<i64, StoreError> {
    Ok(native!(conn => recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;
    use crate::passkeys::{self, StoredPasskey};
    use crate::users::{self, User};

    #[test]
    fn enrolled_names_each_factor_once_it_can_be_proven() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::migrated_in(&dir, 1);
        let user = User::for_test("u1", "ada");
        let enrolled_now = || db.read(|conn| enrolled(conn, "u1")).unwrap();
        db.write(|conn| users::insert_user(conn, &user)).unwrap();
        assert_eq!(enrolled_now(), vec![]);
        db.write(|conn| users::set_password(conn, "u1", "$argon2id$stub", 1)).unwrap();
        assert_eq!(enrolled_now(), vec![Factor::Password]);
        // A pending TOTP secret is not a factor until its first code confirms it.
        db.write(|conn| upsert_pending_totp(conn, "u1", "sealed", 1)).unwrap();
        assert_eq!(enrolled_now(), vec![Factor::Password]);
        assert!(db.write(|conn| accept_totp_step(conn, "u1", 10, true, 2)).unwrap());
        assert_eq!(enrolled_now(), vec![Factor::Password, Factor::Totp]);
        db.write(|conn| replace_recovery_codes(conn, "u1", &["h1".into()], 3)).unwrap();
        assert_eq!(enrolled_now(), vec![Factor::Password, Factor::Totp, Factor::RecoveryCode]);
        // The last unused code spent: recovery is no longer on offer.
        assert!(db.write(|conn| use_recovery_code(conn, "u1", "h1", 4)).unwrap());
        assert_eq!(enrolled_now(), vec![Factor::Password, Factor::Totp]);
        let passkey = StoredPasskey {
            id: "p1".into(),
            user_id: "u1".into(),
            cred_id: "c1".into(),
            name: "laptop".into(),
            credential: "{}".into(),
            created_at: 5,
            last_used_at: None,
        };
        db.write(|conn| passkeys::insert(conn, &passkey)).unwrap();
        assert_eq!(enrolled_now(), vec![Factor::Password, Factor::Totp, Factor::Passkey]);
    }
}
