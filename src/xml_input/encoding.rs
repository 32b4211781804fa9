//! An XML document's encoding, found as XML 1.0 (appendix F) says: a
//! byte-order mark, else the first bytes, else the declaration's
//! `encoding`. UTF-8 (nearly every file) is read in place, untouched; a
//! UTF-16 file (Windows "Unicode") or one that declares a legacy encoding
//! (ISO-8859-1, windows-1252: older Dutch SIS exports) is decoded to UTF-8
//! as it is read, so the readers only ever see UTF-8.

use std::io::{self, BufRead, BufReader};

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};
use encoding_rs_io::{DecodeReaderBytes, DecodeReaderBytesBuilder};

/// An XML input as UTF-8. A reader matches on it once and is made for
/// each case (a dispatch per read would cost the UTF-8 case on every
/// event).
pub(crate) enum Utf8Xml<R> {
    Utf8(R),
    Decoded(BufReader<DecodeReaderBytes<R, Vec<u8>>>),
}

impl<R: BufRead> Utf8Xml<R> {
    /// `input` as UTF-8; Err is one line naming what is wrong (an encoding
    /// sisync does not know, a declaration its bytes contradict), or the
    /// read's own error.
    pub fn new(mut input: R) -> io::Result<Utf8Xml<R>> {
        let from = match sniff(input.fill_buf()?) {
            Ok(None) => return Ok(Utf8Xml::Utf8(input)),
            Ok(Some(from)) => from,
            Err(what) => return Err(io::Error::new(io::ErrorKind::InvalidData, what)),
        };
        // the byte-order mark, when there is one, is dropped by the decoder
        let decoder = DecodeReaderBytesBuilder::new()
            .encoding(Some(from))
            .build(input);
        Ok(Utf8Xml::Decoded(BufReader::with_capacity(
            64 << 10,
            decoder,
        )))
    }
}

/// The encoding to decode from; None for UTF-8.
fn sniff(head: &[u8]) -> Result<Option<&'static Encoding>, String> {
    // a byte-order mark, or `<?` in UTF-16 without one
    match head {
        [0xEF, 0xBB, 0xBF, ..] => return Ok(None),
        [0xFF, 0xFE, ..] | [b'<', 0, b'?', 0, ..] => return Ok(Some(UTF_16LE)),
        [0xFE, 0xFF, ..] | [0, b'<', 0, b'?', ..] => return Ok(Some(UTF_16BE)),
        _ => {}
    }
    let Some(label) = declared(head) else {
        return Ok(None);
    };
    let shown = String::from_utf8_lossy(label);
    match Encoding::for_label(label) {
        Some(e) if e == UTF_8 => Ok(None),
        Some(e) if e == UTF_16LE || e == UTF_16BE => Err(format!(
            "the XML declaration says encoding {shown:?}, but the file is not UTF-16; re-export it as UTF-8"
        )),
        // single- and multi-byte encodings that keep ASCII as ASCII (not
        // ISO-2022-JP, nor WHATWG's "replacement" for unsafe labels)
        Some(e) if e.is_ascii_compatible() => Ok(Some(e)),
        _ => Err(format!(
            "encoding {shown:?} of the XML declaration is not one sisync can read; re-export the file as UTF-8"
        )),
    }
}

/// The `encoding` of an XML declaration at the start of `head`, if the
/// declaration is there whole.
fn declared(head: &[u8]) -> Option<&[u8]> {
    let decl = head.strip_prefix(b"<?xml")?;
    let decl = &decl[..decl.windows(2).position(|w| w == b"?>")?];
    let at = decl.windows(8).position(|w| w == b"encoding")?;
    let rest = decl[at + 8..].trim_ascii_start().strip_prefix(b"=")?;
    let rest = rest.trim_ascii_start();
    let quote = *rest.first().filter(|q| matches!(q, b'"' | b'\''))?;
    let value = &rest[1..];
    Some(&value[..value.iter().position(|&b| b == quote)?])
}

#[cfg(test)]
mod tests {
    use super::Utf8Xml;
    use std::io::Read;

    fn utf8(bytes: &[u8]) -> Result<String, String> {
        let mut out = String::new();
        match Utf8Xml::new(bytes).map_err(|e| e.to_string())? {
            Utf8Xml::Utf8(mut r) => r.read_to_string(&mut out),
            Utf8Xml::Decoded(mut r) => r.read_to_string(&mut out),
        }
        .map_err(|e| e.to_string())?;
        Ok(out)
    }

    const DOC: &str = "<?xml version=\"1.0\" encoding=\"ENC\"?>\n<a>Zoë ’t</a>";

    #[test]
    fn utf8_passes_through_untouched() {
        let doc = DOC.replace("ENC", "UTF-8");
        assert_eq!(utf8(doc.as_bytes()).unwrap(), doc);
        let with_bom = [&[0xEF, 0xBB, 0xBF][..], doc.as_bytes()].concat();
        assert_eq!(utf8(&with_bom).unwrap().as_bytes(), with_bom);
        // no declaration, or one without an encoding: UTF-8
        assert_eq!(utf8(b"<a>x</a>").unwrap(), "<a>x</a>");
        assert_eq!(
            utf8(b"<?xml version='1.0'?><a/>").unwrap(),
            "<?xml version='1.0'?><a/>"
        );
        // invalid UTF-8 is left for the reader to report, not replaced
        assert!(matches!(
            Utf8Xml::new(&b"<a>\xe9</a>"[..]),
            Ok(Utf8Xml::Utf8(_))
        ));
    }

    #[test]
    fn utf16_with_or_without_a_byte_order_mark_is_decoded() {
        let doc = DOC.replace("ENC", "UTF-16");
        let le: Vec<u8> = doc.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = doc.encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(utf8(&[&[0xFF, 0xFE][..], &le].concat()).unwrap(), doc);
        assert_eq!(utf8(&[&[0xFE, 0xFF][..], &be].concat()).unwrap(), doc);
        assert_eq!(utf8(&le).unwrap(), doc);
        assert_eq!(utf8(&be).unwrap(), doc);
    }

    #[test]
    fn a_declared_legacy_encoding_is_decoded() {
        let doc = DOC.replace("ENC", "ISO-8859-1").replace('’', "'");
        let latin1: Vec<u8> = doc.chars().map(|c| c as u8).collect();
        assert_eq!(utf8(&latin1).unwrap(), doc);
        // windows-1252's curly quote, single-quoted declaration
        let doc = DOC.replace("\"ENC\"", "'windows-1252'");
        let (cp1252, _, _) = encoding_rs::WINDOWS_1252.encode(&doc);
        assert_eq!(utf8(&cp1252).unwrap(), doc);
    }

    #[test]
    fn an_unknown_or_contradicted_encoding_is_refused_in_one_line() {
        let e = utf8(DOC.replace("ENC", "EBCDIC-XYZ").as_bytes()).unwrap_err();
        assert_eq!(
            e,
            "encoding \"EBCDIC-XYZ\" of the XML declaration is not one sisync can read; re-export the file as UTF-8"
        );
        let e = utf8(DOC.replace("ENC", "UTF-16").as_bytes()).unwrap_err();
        assert!(
            e.contains("says encoding \"UTF-16\", but the file is not UTF-16"),
            "{e}"
        );
    }
}
