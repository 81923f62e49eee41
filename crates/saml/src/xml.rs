//! The one parse of a SAML document: size and node caps, no DTD (so no
//! entities, external or expanding), and no comments or processing
//! instructions anywhere, so that the text a check reads is the text the
//! signature covered (the comment-truncation attacks, CVE-2017-11427 and
//! its siblings, read one text node of several).

use roxmltree::{Document, Node, ParsingOptions};

use crate::Rejection;

/// The largest document read (Entra's responses are a few KiB; a user in
/// 150 groups adds about 8 KiB).
pub(crate) const MAX_BYTES: usize = 256 * 1024;
/// The most nodes in a document.
const MAX_NODES: u32 = 20_000;
/// The deepest element nesting.
const MAX_DEPTH: usize = 64;

/// Namespace URIs.
pub(crate) mod ns {
    pub(crate) const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
    pub(crate) const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
    pub(crate) const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
    pub(crate) const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
    pub(crate) const EC: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
    pub(crate) const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
    pub(crate) const XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
}

/// Parses `text` as a SAML document, or refuses it.
pub(crate) fn parse(text: &str) -> Result<Document<'_>, Rejection> {
    if text.len() > MAX_BYTES {
        return Err(Rejection::xml("the document is larger than 256 KiB"));
    }
    let doc = Document::parse_with_options(
        text,
        ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_NODES,
        },
    )
    .map_err(|e| Rejection::xml(format!("not well-formed XML: {e}")))?;
    for node in doc.descendants() {
        if node.is_comment() || node.is_pi() {
            return Err(Rejection::xml(
                "comments and processing instructions are refused",
            ));
        }
        if node.is_element() && node.ancestors().count() > MAX_DEPTH {
            return Err(Rejection::xml("elements nest too deeply"));
        }
    }
    Ok(doc)
}

/// Whether `node` is the element `local` in namespace `uri`.
pub(crate) fn is(node: Node<'_, '_>, uri: &str, local: &str) -> bool {
    node.is_element() && node.tag_name().name() == local && node.tag_name().namespace() == Some(uri)
}

/// The element children of `node` named `local` in `uri`.
pub(crate) fn children<'a, 'i>(
    node: Node<'a, 'i>,
    uri: &'a str,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| is(*c, uri, local))
}

/// The one element child of `node` named `local` in `uri`: none or two
/// are a refusal naming `what`.
pub(crate) fn one<'a, 'i>(
    node: Node<'a, 'i>,
    uri: &'a str,
    local: &'a str,
) -> Result<Node<'a, 'i>, Rejection> {
    let mut it = children(node, uri, local);
    match (it.next(), it.next()) {
        (Some(n), None) => Ok(n),
        (None, _) => Err(Rejection::invalid(format!("no `{local}`"))),
        (Some(_), Some(_)) => Err(Rejection::invalid(format!("more than one `{local}`"))),
    }
}

/// The element child named `local` in `uri`, if exactly one.
pub(crate) fn optional<'a, 'i>(
    node: Node<'a, 'i>,
    uri: &'a str,
    local: &'a str,
) -> Result<Option<Node<'a, 'i>>, Rejection> {
    let mut it = children(node, uri, local);
    match (it.next(), it.next()) {
        (n, None) => Ok(n),
        (Some(_), Some(_)) => Err(Rejection::invalid(format!("more than one `{local}`"))),
        (None, Some(_)) => Ok(None),
    }
}

/// All the text of `node`, trimmed.
pub(crate) fn text(node: Node<'_, '_>) -> String {
    let mut s = String::new();
    for d in node.descendants() {
        if d.is_text() {
            s.push_str(d.text().unwrap_or(""));
        }
    }
    s.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctypes_comments_and_processing_instructions_are_refused() {
        for bad in [
            "<!DOCTYPE r [<!ENTITY a \"aaaa\">]><r>&a;</r>",
            "<!DOCTYPE r SYSTEM \"http://evil/\"><r/>",
            "<r><n>admin@example.com<!---->.evil.test</n></r>",
            "<r><?php x?></r>",
            "<r>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert!(parse(&deep).is_err());
        let big = format!("<r>{}</r>", "x".repeat(MAX_BYTES));
        assert!(parse(&big).is_err());
        assert!(parse("<r><n>ok</n></r>").is_ok());
    }
}
