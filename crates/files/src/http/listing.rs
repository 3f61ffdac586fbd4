//! Folder listings: an HTML page that works without JavaScript (sortable,
//! with breadcrumbs, every name escaped) and the same entries as JSON.

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use backroom_api::files::{Entry, Kind};
use backroom_frame::Error;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};

use super::url::{encode, encode_name};
use super::{Body, full};
use crate::paths::RelPath;

/// A folder holding this file is served as a page.
pub const INDEX: &str = "index.html";

/// The column a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Name,
    Size,
    Date,
}

impl Sort {
    pub fn parse(raw: Option<&str>) -> Sort {
        match raw {
            Some("size") => Sort::Size,
            Some("date") => Sort::Date,
            _ => Sort::Name,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::Size => "size",
            Sort::Date => "date",
        }
    }
}

/// How one listing page is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub sort: Sort,
    pub descending: bool,
    /// Whether the reader may write here: they get the forms.
    pub writer: bool,
}

/// Escapes text for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn sort(entries: &mut [Entry], page: &Page) {
    // Folders first, then the chosen column; names break ties.
    entries.sort_by(|a, b| {
        let column = match page.sort {
            Sort::Name => a.name.cmp(&b.name),
            Sort::Size => a.size.cmp(&b.size).then_with(|| a.name.cmp(&b.name)),
            Sort::Date => a
                .modified_ms
                .cmp(&b.modified_ms)
                .then_with(|| a.name.cmp(&b.name)),
        };
        let column = if page.descending {
            column.reverse()
        } else {
            column
        };
        (b.kind == Kind::Dir)
            .cmp(&(a.kind == Kind::Dir))
            .then(column)
    });
}

fn date(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

fn breadcrumbs(path: &RelPath, out: &mut String) {
    out.push_str("<nav class=\"crumbs\"><a href=\"/\">root</a>");
    let mut at = RelPath::root();
    for part in path.components() {
        at = at.join(part);
        let _ = write!(
            out,
            " / <a href=\"{}\">{}</a>",
            escape(&encode(&at, true)),
            escape(part)
        );
    }
    out.push_str("</nav>\n");
}

fn header_cell(label: &str, sort: Sort, page: &Page, out: &mut String) {
    let descending = page.sort == sort && !page.descending;
    let order = if descending { "desc" } else { "asc" };
    let mark = match (page.sort == sort, page.descending) {
        (true, false) => " ▲",
        (true, true) => " ▼",
        _ => "",
    };
    let _ = write!(
        out,
        "<th><a href=\"?sort={}&amp;order={order}\">{label}</a>{mark}</th>",
        sort.key()
    );
}

fn row(entry: &Entry, out: &mut String) {
    let dir = entry.kind == Kind::Dir;
    let href = format!("{}{}", encode_name(&entry.name), if dir { "/" } else { "" });
    let size = if dir {
        "—".to_owned()
    } else {
        entry.size.to_string()
    };
    let _ = writeln!(
        out,
        "<tr><td><a href=\"{}\">{}{}</a></td><td class=\"size\">{size}</td><td>{}</td></tr>",
        escape(&href),
        escape(&entry.name),
        if dir { "/" } else { "" },
        date(entry.modified_ms),
    );
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
td,th{padding:.2em 1em;text-align:left}.size{text-align:right}\
tr:nth-child(even){background:#f4f4f4}form{margin-top:1em}";

/// What a writer gets below the table: an upload form and a new-folder
/// form, which POST to the folder itself.
const FORMS: &str = "<form method=\"post\" enctype=\"multipart/form-data\">\
<input type=\"file\" name=\"file\" multiple> <button>Upload</button></form>\n\
<form method=\"post\"><input name=\"folder\" placeholder=\"new folder\" required> \
<button>Make folder</button></form>\n";

/// The few lines that keep the table current: on each change the folder's
/// event stream reports, the page fetches itself again and swaps in the new
/// table. Without JavaScript the page is simply static.
const LIVE: &str = "<script>\
if(window.EventSource){const s=new EventSource('?events');\
s.onmessage=async()=>{const r=await fetch(location.href);\
const d=new DOMParser().parseFromString(await r.text(),'text/html');\
document.getElementById('listing').replaceWith(d.getElementById('listing'));};}\
</script>\n";

/// The HTML page of a folder.
pub fn html(path: &RelPath, mut entries: Vec<Entry>, page: &Page) -> Result<Response<Body>, Error> {
    sort(&mut entries, page);
    let title = if path.is_root() {
        "/".to_owned()
    } else {
        format!("/{path}/")
    };
    let mut out = String::with_capacity(512 + entries.len() * 160);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    breadcrumbs(path, &mut out);
    out.push_str("<table id=\"listing\"><thead><tr>");
    header_cell("Name", Sort::Name, page, &mut out);
    header_cell("Size", Sort::Size, page, &mut out);
    header_cell("Modified", Sort::Date, page, &mut out);
    out.push_str("</tr></thead><tbody>\n");
    for entry in &entries {
        row(entry, &mut out);
    }
    out.push_str("</tbody></table>\n");
    if page.writer {
        out.push_str(FORMS);
    }
    out.push_str(LIVE);
    out.push_str("</body></html>\n");
    let mut response = Response::new(full(out));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The entries of a folder as JSON: `{"entries": [...]}`, each as `list`
/// describes it.
pub fn json(entries: &[Entry]) -> Result<Response<Body>, Error> {
    let body = serde_json::to_vec(&serde_json::json!({ "entries": entries }))
        .map_err(|e| Error::internal(format!("encode the listing: {e}")))?;
    let mut response = Response::new(full(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: Kind, size: u64, modified_ms: i64) -> Entry {
        Entry {
            name: name.into(),
            kind,
            size,
            modified_ms,
            mode: 0o644,
        }
    }

    #[test]
    fn a_script_name_is_text_not_code() {
        let name = "<script>alert(1)</script>";
        let page = Page {
            sort: Sort::Name,
            descending: false,
            writer: false,
        };
        let root = RelPath::root();
        let response = html(&root, vec![entry(name, Kind::File, 1, 0)], &page).expect("page");
        let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
            response.into_body(),
        ))
        .expect("ready")
        .expect("body")
        .to_bytes();
        let text = String::from_utf8(body.to_vec()).expect("utf-8");
        assert!(!text.contains("<script>alert"), "{text}");
        assert!(
            text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{text}"
        );
    }

    #[test]
    fn folders_come_first_then_the_chosen_column() {
        let mut entries = vec![
            entry("b", Kind::File, 1, 30),
            entry("a", Kind::File, 3, 10),
            entry("z", Kind::Dir, 0, 20),
        ];
        let page = Page {
            sort: Sort::Size,
            descending: true,
            writer: false,
        };
        sort(&mut entries, &page);
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["z", "a", "b"]);
    }
}
