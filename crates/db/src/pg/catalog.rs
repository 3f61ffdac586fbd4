//! psql's catalog queries, answered from SQLite's schema: `\dt` and `\d`
//! (the list of tables and views), `\di` (indexes), `\d NAME` (a table's
//! or view's columns and indexes) and `\l` (the list of databases). Any
//! other query of PostgreSQL's catalog is refused in one line that says
//! where the same answer is in SQLite.
//!
//! `\d NAME` first looks the name up for its oid, then asks about that oid
//! in several queries. The face gives each relation a session a name was
//! looked up by an oid from [`FIRST_OID`] up, and answers the queries
//! about it with SQLite's pragmas.

use super::rewrite::quote;

/// What a catalog query asks for.
#[derive(Debug, PartialEq)]
pub enum Catalog {
    /// `\dt`, `\dv`, `\d`: tables (and views), optionally one name.
    Relations { views: bool, name: Option<String> },
    /// `\di`: indexes, optionally one name.
    Indexes { name: Option<String> },
    /// `\d NAME`'s first query: the oid of the table or view `name`.
    Lookup { name: String },
    /// `\d NAME`: the relation's kind and flags.
    Relation { oid: u32 },
    /// `\d NAME`: the relation's columns.
    Columns { oid: u32 },
    /// `\d NAME`: the table's indexes.
    TableIndexes { oid: u32 },
    /// `\d NAME`: another footer (policies, statistics, publications,
    /// inheritance), which SQLite never has: no rows.
    Nothing { oid: u32 },
    /// `\l`.
    Databases,
    /// Another catalog query, which the face cannot answer.
    Unsupported,
}

/// Recognises a query of PostgreSQL's catalog; `None` for anything else.
pub fn recognise(sql: &str) -> Option<Catalog> {
    // Every catalog query names a pg_ table or information_schema: the
    // rest (nearly all) leave here without a copy of their text.
    let mentions = |needle: &[u8]| {
        sql.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    if !mentions(b"pg_") && !mentions(b"information_schema") {
        return None;
    }
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
    let flat = lower.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.starts_with("select c.oid, n.nspname, c.relname from pg_catalog.pg_class c") {
        return Some(
            exact_name(&lower).map_or(Catalog::Unsupported, |name| Catalog::Lookup { name }),
        );
    }
    if let Some(oid) = oid_literal(&flat) {
        return Some(if flat.starts_with("select c.relchecks, c.relkind") {
            Catalog::Relation { oid }
        } else if flat.starts_with("select a.attname,") {
            Catalog::Columns { oid }
        } else if flat.starts_with("select c2.relname, i.indisprimary") {
            Catalog::TableIndexes { oid }
        } else {
            Catalog::Nothing { oid }
        });
    }
    let lists_relations = lower.contains("from pg_catalog.pg_class c")
        && lower.contains("c.relkind in (")
        && lower.contains("as \"schema\"");
    if lists_relations {
        let kinds = lower
            .split_once("c.relkind in (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map_or("", |(kinds, _)| kinds);
        let name = exact_name(&lower);
        if kinds.contains("'i'") {
            return Some(Catalog::Indexes { name });
        }
        return Some(Catalog::Relations {
            views: kinds.contains("'v'"),
            name,
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

/// The first oid the face gives a relation, as PostgreSQL's first
/// user object.
pub const FIRST_OID: u32 = 16384;

/// The oid a query of `\d NAME` asks about: its first quoted number.
fn oid_literal(flat: &str) -> Option<u32> {
    flat.split('\'')
        .skip(1)
        .step_by(2)
        .find(|quoted| !quoted.is_empty() && quoted.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse().ok())
}

/// The tables and views of the main and temp schemas, with their
/// persistence as psql reads it.
const RELATIONS: &str = "(SELECT name, type, 'p' AS persistence FROM sqlite_schema \
     UNION ALL SELECT name, type, 't' FROM sqlite_temp_schema)";

/// The name of the table or view `?1`, however it was cased.
pub fn lookup_sql() -> String {
    format!(
        "SELECT name FROM {RELATIONS} WHERE type IN ('table', 'view') AND name = ?1 \
         COLLATE NOCASE AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' LIMIT 1"
    )
}

/// psql's answer about relation `?1`: kind, flags, persistence. It has
/// no check constraints, rules, triggers or row security for psql to ask
/// about, since SQLite keeps none in a catalog.
pub fn relation_sql() -> String {
    format!(
        "SELECT 0 AS relchecks, CASE type WHEN 'view' THEN 'v' ELSE 'r' END AS relkind, \
         CASE WHEN EXISTS (SELECT 1 FROM pragma_index_list(?1)) THEN 't' ELSE 'f' END AS relhasindex, \
         'f' AS relhasrules, 'f' AS relhastriggers, 'f' AS relrowsecurity, \
         'f' AS relforcerowsecurity, 'f' AS relhasoids, 'f' AS relispartition, '' AS reloptions, \
         0 AS reltablespace, '' AS reloftype, persistence AS relpersistence, 'd' AS relreplident, \
         CASE type WHEN 'view' THEN NULL ELSE 'heap' END AS amname \
         FROM {RELATIONS} WHERE name = ?1 LIMIT 1"
    )
}

/// psql's columns of relation `?1`: name, declared type, default, not
/// null, collation, identity, generated.
pub const COLUMNS_SQL: &str = "SELECT name AS attname, type AS format_type, \
     dflt_value AS attdefault, CASE WHEN \"notnull\" THEN 't' ELSE 'f' END AS attnotnull, \
     NULL AS attcollation, '' AS attidentity, '' AS attgenerated \
     FROM pragma_table_xinfo(?1) WHERE hidden <> 1 ORDER BY cid";

/// psql's indexes of table `?1`: a primary key's index first, each with
/// its columns after `USING`, and a partial index's condition.
pub const INDEXES_SQL: &str = "SELECT il.name AS relname, \
     CASE il.origin WHEN 'pk' THEN 't' ELSE 'f' END AS indisprimary, \
     CASE WHEN il.\"unique\" THEN 't' ELSE 'f' END AS indisunique, 'f' AS indisclustered, \
     't' AS indisvalid, \
     'CREATE INDEX ' || il.name || ' ON ' || ?1 || ' USING btree (' || \
       (SELECT group_concat(c, ', ') FROM (SELECT coalesce(ii.name, 'expression') AS c \
        FROM pragma_index_info(il.name) ii ORDER BY ii.seqno)) || ')' || \
       CASE WHEN il.partial THEN ' WHERE ' || \
         (SELECT substr(s.sql, instr(upper(s.sql), ' WHERE ') + 7) FROM sqlite_schema s \
          WHERE s.name = il.name) ELSE '' END AS indexdef, \
     NULL AS constraintdef, CASE il.origin WHEN 'pk' THEN 'p' WHEN 'u' THEN 'u' END AS contype, \
     'f' AS condeferrable, 'f' AS condeferred, 'f' AS indisreplident, 0 AS reltablespace \
     FROM pragma_index_list(?1) il ORDER BY il.origin = 'pk' DESC, il.name";

/// The SQLite query that lists the indexes, in psql's columns (`\di`).
pub fn indexes_sql(name: Option<&str>, owner: &str) -> String {
    let only = name.map_or(String::new(), |n| format!(" AND name = {}", quote(n)));
    format!(
        "SELECT 'public' AS \"Schema\", name AS \"Name\", 'index' AS \"Type\", {} AS \"Owner\", \
         tbl_name AS \"Table\" FROM sqlite_schema WHERE type = 'index'{only} ORDER BY name",
        quote(owner)
    )
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
     have: \\dt, \\dv, \\di, \\d, \\d NAME and \\l work; for a table's columns use \
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
