//! The one SQL type the two backends store differently: a moment in time. PostgreSQL keeps
//! it as `timestamptz`; SQLite as UTC ISO 8601 text with microseconds
//! (`2026-11-25T16:48:26.123456Z`), which sorts in time order as text. The generated schema
//! (`schema.rs`) names this type for every timestamp column (`diesel.toml` imports it in
//! place of Diesel's PostgreSQL-only `Timestamptz`), so one schema serves both backends.

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::SqlType;
use diesel::sqlite::Sqlite;

/// A moment in time, on either backend.
#[derive(Debug, Clone, Copy, SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Timestamptz;

/// The arithmetic Diesel's schema macro expects of a type named `Timestamptz` (this crate
/// does no date arithmetic in SQL).
impl diesel::sql_types::ops::Add for Timestamptz {
    type Rhs = diesel::sql_types::Interval;
    type Output = Timestamptz;
}

impl diesel::sql_types::ops::Sub for Timestamptz {
    type Rhs = diesel::sql_types::Interval;
    type Output = Timestamptz;
}

/// A value of [`Timestamptz`]: a UTC moment with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, AsExpression, FromSqlRow)]
#[diesel(sql_type = Timestamptz)]
pub struct Instant(pub DateTime<Utc>);

impl Instant {
    pub fn now() -> Self {
        Self(Utc::now())
    }

    /// `age` ago.
    pub fn before(age: std::time::Duration) -> Self {
        Self(from_now(age, DateTime::checked_sub_signed).unwrap_or(DateTime::<Utc>::MIN_UTC))
    }

    /// `delay` from now.
    pub fn after(delay: std::time::Duration) -> Self {
        Self(from_now(delay, DateTime::checked_add_signed).unwrap_or(DateTime::<Utc>::MAX_UTC))
    }
}

/// Now, moved by `by` with `shift`; `None` past the range of a date.
fn from_now(
    by: std::time::Duration,
    shift: fn(DateTime<Utc>, chrono::TimeDelta) -> Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    shift(Utc::now(), chrono::TimeDelta::from_std(by).ok()?)
}

impl FromSql<Timestamptz, Pg> for Instant {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<diesel::sql_types::Timestamptz, Pg>>::from_sql(value).map(Self)
    }
}

impl ToSql<Timestamptz, Pg> for Instant {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<diesel::sql_types::Timestamptz, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<Timestamptz, Sqlite> for Instant {
    fn from_sql(
        value: <Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        Ok(Self(
            DateTime::parse_from_rfc3339(&text)?.with_timezone(&Utc),
        ))
    }
}

impl ToSql<Timestamptz, Sqlite> for Instant {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.to_rfc3339_opts(SecondsFormat::Micros, true));
        Ok(serialize::IsNull::No)
    }
}
