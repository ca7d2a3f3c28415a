//! Statements prepared once per connection that diesel would otherwise prepare at every use.
//!
//! diesel caches a prepared statement only when it can prove the SQL never changes for the query's
//! type; it gives up on every `UPDATE` (a changeset may skip `None` fields) and on raw SQL. Some of
//! those run on every sign-in or token (the audit chain's head, a code's redemption) and inside
//! every group commit (`SAVEPOINT` and `RELEASE`), where parsing and planning them again cost more
//! than running them.
//!
//! The marker holds only for queries run through `load` (`get_result`, so an `UPDATE … RETURNING`)
//! or with no `UPDATE` inside: `execute` hands the connection a reference, diesel's implementation
//! for references asks the statement itself, and an `UPDATE` always refuses. So the `UPDATE`s on
//! the sign-in and step-up paths read a column back (`RETURNING`) and run with `get_result`: run
//! with `execute`, they were parsed again at every use (3.5% of a step-up's CPU).

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// A query whose SQL is the same at every use, kept prepared by diesel's statement cache under the
/// marker type `K`. The caller vouches for it: one `K` per call site, no optional fields in its
/// changeset, no `IN` list.
pub(crate) struct Prepared<K, Q>(Q, PhantomData<K>);

/// `query`, prepared once per connection under the marker `K`.
pub(crate) fn prepared<K: 'static, Q>(query: Q) -> Prepared<K, Q> {
    Prepared(query, PhantomData)
}

impl<K, Q: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for Prepared<K, Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<K: 'static, Q> QueryId for Prepared<K, Q> {
    type QueryId = K;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<K, Q: Query> Query for Prepared<K, Q> {
    type SqlType = Q::SqlType;
}

impl<K, Q, C> RunQueryDsl<C> for Prepared<K, Q> {}

/// A fixed SQL text without parameters, named by a type so the statement cache can tell them apart.
pub(crate) trait FixedSql: Send + Sync + 'static {
    const SQL: &'static str;
}

/// A [`FixedSql`] statement, to run with `execute`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fixed<S>(PhantomData<S>);

impl<S: FixedSql, DB: Backend> QueryFragment<DB> for Fixed<S> {
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        pass.push_sql(S::SQL);
        Ok(())
    }
}

impl<S: FixedSql> QueryId for Fixed<S> {
    type QueryId = S;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<S, C> RunQueryDsl<C> for Fixed<S> {}

/// Declares unit types naming fixed statements.
macro_rules! fixed_sql {
    ($($(#[$doc:meta])* $name:ident = $sql:literal;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, Default)]
            pub(crate) struct $name;
            impl FixedSql for $name {
                const SQL: &'static str = $sql;
            }
        )*
    };
}

fixed_sql! {
    /// SQLite: take the write lock now, so the transaction can never fail to upgrade it later.
    BeginImmediate = "BEGIN IMMEDIATE";
    Commit = "COMMIT";
    Rollback = "ROLLBACK";
    SavepointJob = "SAVEPOINT job";
    ReleaseJob = "RELEASE job";
    RollbackToJob = "ROLLBACK TO job";
}

/// Runs a fixed statement.
pub(crate) fn run<S: FixedSql>(conn: &mut crate::Conn) -> QueryResult<()> {
    crate::db::native!(conn => Fixed::<S>(PhantomData).execute(conn)).map(|_| ())
}
