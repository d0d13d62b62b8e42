//! Which backend a database URL names. An unknown scheme is refused, never turned silently into
//! a new empty SQLite file.

use std::path::PathBuf;

use crate::error::StoreError;

/// A parsed database location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A SQLite file (created when missing), or `:memory:`.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, as given.
    Postgres(String),
}

impl DatabaseTarget {
    /// Parses `sqlite://PATH`, `sqlite:PATH`, `postgres://…` or `postgresql://…`.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(StoreError::Config(
                    "the sqlite URL names no file: use sqlite://path/to/techpack.db".into(),
                ));
            }
            return Ok(DatabaseTarget::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseTarget::Postgres(url.to_owned()));
        }
        let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or(url);
        Err(StoreError::Config(format!(
            "unsupported database URL scheme '{scheme}': use sqlite://PATH (the default, a file) or postgres://USER@HOST/DB"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_backend_by_scheme_and_refuses_others() {
        assert_eq!(
            DatabaseTarget::parse("sqlite://data/t.db").unwrap(),
            DatabaseTarget::Sqlite("data/t.db".into())
        );
        assert_eq!(
            DatabaseTarget::parse("sqlite:///abs/t.db?mode=rwc").unwrap(),
            DatabaseTarget::Sqlite("/abs/t.db".into())
        );
        assert!(matches!(
            DatabaseTarget::parse("postgresql://u@h/db").unwrap(),
            DatabaseTarget::Postgres(_)
        ));
        let error = DatabaseTarget::parse("mysql://u@h/db")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unsupported database URL scheme 'mysql'"),
            "{error}"
        );
        assert!(DatabaseTarget::parse("techpack.db").is_err());
    }
}
