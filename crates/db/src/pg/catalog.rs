//! psql's catalog queries, answered from SQLite's schema: `\dt` and `\d`
//! (the list of tables and views) and `\l` (the list of databases). Any
//! other query of PostgreSQL's catalog is refused in one line that says
//! where the same answer is in SQLite.

use super::rewrite::quote;

/// What a catalog query asks for.
#[derive(Debug, PartialEq)]
pub enum Catalog {
    /// `\dt`, `\dv`, `\d`: tables (and views), optionally one name.
    Relations { views: bool, name: Option<String> },
    /// `\l`.
    Databases,
    /// Another catalog query, which the face cannot answer.
    Unsupported,
}

/// Recognises a query of PostgreSQL's catalog; `None` for anything else.
pub fn recognise(sql: &str) -> Option<Catalog> {
    let lower = sql.to_ascii_lowercase();
    let catalog = [
        "pg_catalog.",
        "pg_class",
        "pg_namespace",
        "pg_database",
        "pg_type ",
        "information_schema.",
    ];
    if !catalog.iter().any(|c| lower.contains(c)) {
        return None;
    }
    if lower.contains("from pg_catalog.pg_database") {
        return Some(Catalog::Databases);
    }
    let lists_relations = lower.contains("from pg_catalog.pg_class c")
        && lower.contains("c.relkind in (")
        && lower.contains("as \"schema\"");
    if lists_relations {
        let kinds = lower
            .split_once("c.relkind in (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map_or("", |(kinds, _)| kinds);
        return Some(Catalog::Relations {
            views: kinds.contains("'v'"),
            name: exact_name(&lower),
        });
    }
    Some(Catalog::Unsupported)
}

/// The name psql's pattern `c.relname OPERATOR(pg_catalog.~) '^(name)$'`
/// matches exactly, when it is a plain name.
fn exact_name(lower: &str) -> Option<String> {
    let (_, rest) = lower.split_once("operator(pg_catalog.~) '^(")?;
    let (name, _) = rest.split_once(")$'")?;
    name.chars()
        .all(|c| c.is_alphanumeric() || c == '_')
        .then(|| name.to_owned())
}

/// The SQLite query that lists the relations, in psql's columns.
pub fn relations_sql(views: bool, name: Option<&str>, owner: &str) -> String {
    let types = if views { "'table', 'view'" } else { "'table'" };
    let only = name.map_or(String::new(), |n| format!(" AND name = {}", quote(n)));
    format!(
        "SELECT 'public' AS \"Schema\", name AS \"Name\", type AS \"Type\", {} AS \"Owner\" \
         FROM sqlite_schema WHERE type IN ({types}) AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'{only} \
         ORDER BY name",
        quote(owner)
    )
}

/// The one line that refuses any other catalog query.
pub const UNSUPPORTED: &str = "this is a query of PostgreSQL's catalog, which backroom-db does not \
     have: \\dt, \\dv, \\d without a name and \\l work; for a table's columns use \
     SELECT * FROM pragma_table_info('TABLE'), for its SQL SELECT sql FROM sqlite_schema";

#[cfg(test)]
mod tests {
    use super::*;

    /// What psql 15 sends for `\dt`.
    const DT: &str = "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\",\n  CASE c.relkind WHEN 'r' THEN 'table' END as \"Type\",\n  pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\"\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\nWHERE c.relkind IN ('r','p','')\n      AND n.nspname <> 'pg_catalog'\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 1,2;";

    #[test]
    fn psqls_list_queries_are_recognised() {
        assert_eq!(
            recognise(DT),
            Some(Catalog::Relations {
                views: false,
                name: None
            })
        );
        let one = DT.replace(
            "WHERE c.relkind IN ('r','p','')",
            "WHERE c.relkind IN ('r','p','v','m','S','f','')\n  AND c.relname OPERATOR(pg_catalog.~) '^(trips)$' COLLATE pg_catalog.default",
        );
        assert_eq!(
            recognise(&one),
            Some(Catalog::Relations {
                views: true,
                name: Some("trips".into())
            })
        );
        assert_eq!(
            recognise("SELECT d.datname as \"Name\" FROM pg_catalog.pg_database d ORDER BY 1;"),
            Some(Catalog::Databases)
        );
        assert_eq!(
            recognise("SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname = 't'"),
            Some(Catalog::Unsupported)
        );
        assert_eq!(recognise("SELECT * FROM trips"), None);
    }
}
