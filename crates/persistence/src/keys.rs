//! API keys in the database (the domain's `KeyRepository`): stored by the hash of their
//! secret, never the secret itself.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use identity_domain::{ActiveKey, ApiKey, KeyError, KeyRepository, RepositoryError, Scopes};

use crate::pool::on_backend;
use crate::repository::SqlStore;
use crate::retry::UnitError;
use crate::schema::api_key;
use crate::sql_types::Instant;

/// A key as stored.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = api_key)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct KeyRow {
    id: i64,
    name: String,
    key_hash: String,
    scopes: String,
    created_at: Instant,
    last_used_at: Option<Instant>,
    revoked_at: Option<Instant>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_key)]
struct NewKeyRow<'a> {
    name: &'a str,
    key_hash: &'a str,
    scopes: String,
    created_at: Instant,
}

impl KeyRow {
    fn into_key(self) -> Result<ApiKey, UnitError> {
        Ok(ApiKey {
            id: self.id,
            scopes: Scopes::parse_list(&self.scopes).map_err(|e| {
                UnitError::Final(RepositoryError::Internal(
                    format!("api key {} has bad scopes: {e}", self.id).into(),
                ))
            })?,
            name: self.name,
            created_at: self.created_at.0,
            last_used_at: self.last_used_at.map(|at| at.0),
            revoked_at: self.revoked_at.map(|at| at.0),
        })
    }
}

impl KeyRepository for SqlStore {
    fn create(&self, name: &str, hash: &str, scopes: &Scopes) -> Result<ApiKey, KeyError> {
        let row = NewKeyRow {
            name,
            key_hash: hash,
            scopes: scopes.to_string(),
            created_at: Instant::now(),
        };
        let created = self.retry.once(&self.pool, |db| {
            let inserted = on_backend!(db, conn => diesel::insert_into(api_key::table)
                .values(&row)
                .returning(KeyRow::as_returning())
                .get_result(conn));
            match inserted {
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
                other => other?.into_key().map(Some),
            }
        })?;
        created.ok_or_else(|| KeyError::DuplicateName(name.to_owned()))
    }

    fn list(&self) -> Result<Vec<ApiKey>, RepositoryError> {
        self.retry.once(&self.pool, |db| {
            let rows: Vec<KeyRow> = on_backend!(db, conn => api_key::table
                .order(api_key::id)
                .select(KeyRow::as_select())
                .load(conn))?;
            rows.into_iter().map(KeyRow::into_key).collect()
        })
    }

    fn revoke(&self, name_or_id: &str) -> Result<Option<ApiKey>, RepositoryError> {
        let now = Instant::now();
        self.retry.once(&self.pool, |db| {
            let by_name: Option<KeyRow> = on_backend!(db, conn => api_key::table
                .filter(api_key::name.eq(name_or_id))
                .select(KeyRow::as_select())
                .first(conn)
                .optional())?;
            let row = match (by_name, name_or_id.trim().parse::<i64>()) {
                (Some(row), _) => Some(row),
                (None, Ok(id)) => on_backend!(db, conn => api_key::table
                    .find(id)
                    .select(KeyRow::as_select())
                    .first(conn)
                    .optional())?,
                (None, Err(_)) => None,
            };
            let Some(row) = row else {
                return Ok(None);
            };
            if row.revoked_at.is_none() {
                on_backend!(db, conn => diesel::update(api_key::table.find(row.id))
                    .set(api_key::revoked_at.eq(now))
                    .execute(conn))?;
            }
            let revoked_at = row.revoked_at.or(Some(now));
            KeyRow { revoked_at, ..row }.into_key().map(Some)
        })
    }

    fn active(&self) -> Result<Vec<ActiveKey>, RepositoryError> {
        self.retry.once(&self.pool, |db| {
            let rows: Vec<KeyRow> = on_backend!(db, conn => api_key::table
                .filter(api_key::revoked_at.is_null())
                .select(KeyRow::as_select())
                .load(conn))?;
            rows.into_iter()
                .map(|row| {
                    let hash = row.key_hash.clone();
                    row.into_key().map(|key| ActiveKey {
                        id: key.id,
                        name: key.name,
                        hash,
                        scopes: key.scopes,
                    })
                })
                .collect()
        })
    }

    fn touch(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), RepositoryError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.retry.once(&self.pool, |db| {
            on_backend!(db, conn => diesel::update(api_key::table.filter(api_key::id.eq_any(ids)))
                .set(api_key::last_used_at.eq(Instant(at)))
                .execute(conn))?;
            Ok(())
        })
    }
}
