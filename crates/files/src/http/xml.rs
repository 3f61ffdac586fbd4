//! The XML of WebDAV requests, read into a small tree with namespaces
//! resolved (by quick-xml), and the escaping of what we write back.

use backroom_frame::Error;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// The WebDAV namespace.
pub const DAV: &str = "DAV:";
/// The deepest element nesting read; deeper documents are refused.
const MAX_DEPTH: usize = 64;

/// One element: its namespace, local name, text and children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub ns: String,
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The first child in the DAV: namespace called `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.is(DAV, name))
    }
}

fn bad(e: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("the XML body is not well formed: {e}"))
}

fn node(
    reader: &NsReader<&[u8]>,
    start: &quick_xml::events::BytesStart<'_>,
) -> Result<Node, Error> {
    let (ns, local) = reader.resolve_element(start.name());
    let ns = match ns {
        ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
        ResolveResult::Unbound => String::new(),
        ResolveResult::Unknown(prefix) => {
            return Err(bad(format!(
                "the prefix {:?} is not declared",
                String::from_utf8_lossy(&prefix)
            )));
        }
    };
    Ok(Node {
        ns,
        name: String::from_utf8_lossy(local.as_ref()).into_owned(),
        ..Node::default()
    })
}

/// Parses a request body; `None` when it is empty.
pub fn parse(body: &[u8]) -> Result<Option<Node>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut reader = NsReader::from_reader(body);
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    loop {
        let (_, event) = reader.read_resolved_event().map_err(bad)?;
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::bad_request("the XML body is nested too deep"));
                }
                let n = node(&reader, &start)?;
                stack.push(n);
            }
            Event::Empty(start) => {
                let n = node(&reader, &start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(n),
                    None => root = Some(n),
                }
            }
            Event::End(_) => {
                let done = stack.pop().ok_or_else(|| bad("an unmatched end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text.xml_content().map_err(bad)?);
                }
            }
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    top.text
                        .push_str(&String::from_utf8_lossy(&data.into_inner()));
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(bad)? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = reference.decode().map_err(bad)?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| bad(format!("an unknown entity &{name};")))?
                            .to_owned()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(bad("an element is not closed"));
    }
    root.map(Some).ok_or_else(|| bad("no root element"))
}

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_resolved_and_entities_decoded() {
        let body = br#"<?xml version="1.0"?>
            <D:propertyupdate xmlns:D="DAV:" xmlns:Z="http://example.com/z">
              <D:set><D:prop><Z:colour>red &amp; &#x263A;</Z:colour></D:prop></D:set>
            </D:propertyupdate>"#;
        let root = parse(body).expect("parses").expect("a root");
        assert!(root.is(DAV, "propertyupdate"));
        let prop = &root
            .child("set")
            .expect("set")
            .child("prop")
            .expect("prop")
            .children[0];
        assert_eq!(
            (prop.ns.as_str(), prop.name.as_str()),
            ("http://example.com/z", "colour")
        );
        assert_eq!(prop.text, "red & ☺");
    }

    #[test]
    fn malformed_xml_is_refused() {
        assert!(parse(b"<D:propfind xmlns:D=\"DAV:\"><D:prop>").is_err());
        assert!(parse(b"<a></b>").is_err());
        assert!(parse(b"<f:propfind xmlns:f=\"DAV:\"><b:prop/></f:propfind>").is_err());
        assert!(parse(b"  ").expect("empty").is_none());
    }
}
