//! `[source.accommodations]`: which keys of a person record carry exam
//! accommodations, one type for the IMS Enterprise and OneRoster sources,
//! which differ only in their default names.

use std::marker::PhantomData;

use serde::{Deserialize, Deserializer};

use crate::connector::source::oneroster::vocab::parse_accommodation_values;
use crate::model::Accommodations;

/// A source's default names: the standard ones after its prefix.
pub trait DefaultNames {
    const PREFIX: &'static str;
}

/// IMS Enterprise: `person/extension` elements by their standard names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ims;
impl DefaultNames for Ims {
    const PREFIX: &'static str = "";
}

/// OneRoster: `metadata.` columns (the REST source: `metadata` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneRoster;
impl DefaultNames for OneRoster {
    const PREFIX: &'static str = "metadata.";
}

/// The keys of the three accommodation values; a key the table leaves out
/// keeps the source's default name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccommodationKeys<Names> {
    pub extra_time_percent: String,
    pub font_scale: String,
    pub screen_reader: String,
    names: PhantomData<Names>,
}

impl<N: DefaultNames> Default for AccommodationKeys<N> {
    fn default() -> Self {
        AccommodationKeys {
            extra_time_percent: format!("{}extraTimePercent", N::PREFIX),
            font_scale: format!("{}fontScale", N::PREFIX),
            screen_reader: format!("{}screenReader", N::PREFIX),
            names: PhantomData,
        }
    }
}

/// The table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccommodationTable {
    extra_time_percent: Option<String>,
    font_scale: Option<String>,
    screen_reader: Option<String>,
}

impl<'de, N: DefaultNames> Deserialize<'de> for AccommodationKeys<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let given = AccommodationTable::deserialize(d)?;
        let default = AccommodationKeys::<N>::default();
        Ok(AccommodationKeys {
            extra_time_percent: given
                .extra_time_percent
                .unwrap_or(default.extra_time_percent),
            font_scale: given.font_scale.unwrap_or(default.font_scale),
            screen_reader: given.screen_reader.unwrap_or(default.screen_reader),
            names: PhantomData,
        })
    }
}

impl<N> AccommodationKeys<N> {
    /// A person's accommodations: `value_of` each key, by the rules every
    /// source shares; errors name the key.
    pub fn read<S: AsRef<str>>(
        &self,
        value_of: impl Fn(&str) -> Option<S>,
    ) -> Result<Accommodations, String> {
        let keys = [
            &self.extra_time_percent,
            &self.font_scale,
            &self.screen_reader,
        ];
        let [extra, font, reader] = keys.map(|key| value_of(key));
        parse_accommodation_values([
            (keys[0], extra.as_ref().map(AsRef::as_ref)),
            (keys[1], font.as_ref().map(AsRef::as_ref)),
            (keys[2], reader.as_ref().map(AsRef::as_ref)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(bound = "N: DefaultNames")]
    struct Source<N> {
        #[serde(default)]
        accommodations: AccommodationKeys<N>,
    }

    fn parse<N: DefaultNames>(toml: &str) -> AccommodationKeys<N> {
        toml::from_str::<Source<N>>(toml).unwrap().accommodations
    }

    #[test]
    fn each_source_keeps_its_own_defaults_for_the_keys_left_out() {
        let ims: AccommodationKeys<Ims> = parse("");
        assert_eq!(ims.extra_time_percent, "extraTimePercent");
        assert_eq!(ims.font_scale, "fontScale");
        assert_eq!(ims.screen_reader, "screenReader");
        let or: AccommodationKeys<OneRoster> = parse("");
        assert_eq!(or.extra_time_percent, "metadata.extraTimePercent");
        assert_eq!(or.screen_reader, "metadata.screenReader");

        let ims: AccommodationKeys<Ims> = parse("[accommodations]\nfont_scale = \"zoom\"");
        assert_eq!(ims.font_scale, "zoom");
        assert_eq!(ims.extra_time_percent, "extraTimePercent");
        let or: AccommodationKeys<OneRoster> = parse("accommodations = { screen_reader = \"sr\" }");
        assert_eq!(or.screen_reader, "sr");
        assert_eq!(or.font_scale, "metadata.fontScale");
    }

    #[test]
    fn an_unknown_key_is_refused_where_it_stands() {
        let text = "[accommodations]\n\nfont_size = \"x\"";
        let e = toml::from_str::<Source<Ims>>(text).unwrap_err();
        assert!(e.to_string().contains("unknown field `font_size`"), "{e}");
        assert_eq!(e.span().map(|s| &text[s]), Some("font_size"));
    }

    #[test]
    fn values_are_read_under_the_configured_keys_and_errors_name_them() {
        let keys = AccommodationKeys::<OneRoster>::default();
        let row = |k: &str| match k {
            "metadata.extraTimePercent" => Some("25%".to_string()),
            "metadata.screenReader" => Some("ja".to_string()),
            _ => None,
        };
        let a = keys.read(row).unwrap();
        assert_eq!(a.extra_time_percent, Some(25));
        assert_eq!(a.font_scale, None);
        assert_eq!(a.screen_reader, Some(true));
        let e = keys
            .read(|k| (k == "metadata.fontScale").then_some("9"))
            .unwrap_err();
        assert!(e.starts_with("metadata.fontScale "), "{e}");
    }
}
